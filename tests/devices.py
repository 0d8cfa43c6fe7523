"""The device the flow, model and training tests run on.

``FGAUG_TEST_DEVICE`` (default ``cpu``) names it; ``benchmarks/gpu_check.py`` runs these tests
with ``cuda``. The device is resolved as the CLI resolves ``--device``, so CUDA runs with the
same float32 settings as the product (no TF32 outside the networks).
"""

from __future__ import annotations

import os

import pytest

from fgaug.runtime import RuntimeChoiceError, resolve_device

try:
    TEST_DEVICE = resolve_device(os.environ.get("FGAUG_TEST_DEVICE", "cpu"))
except RuntimeChoiceError as error:
    pytest.exit(f"FGAUG_TEST_DEVICE: {error}", returncode=4)

ON_CUDA = TEST_DEVICE.type == "cuda"
