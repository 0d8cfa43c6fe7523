"""How long torch's OpenMP threads spin before they sleep, chosen before torch is imported.

The flow's arithmetic is many small parallel regions. Between them, libgomp's threads spin for
up to 300,000 iterations by default, which costs nothing on an idle machine but is ruinous when
two fgaug processes share a few cores (CI data-prep steps run side by side): each spins on a core
the other needs, and two runs took 41 times as long as one (issue 14, measured by
``benchmarks/concurrency.py``). A bounded spin count keeps a lone run as fast and lets a busy
machine share its cores.

fgaug sets ``GOMP_SPINCOUNT`` only when neither it nor ``OMP_WAIT_POLICY`` is already set and
``FGAUG_OMP`` is not ``leave``; it must run before ``import torch`` (``import fgaug`` first).
"""

from __future__ import annotations

import os

SPIN_COUNT = "10000"


def bound_openmp_spinning() -> None:
    if os.environ.get("FGAUG_OMP") == "leave":
        return
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
