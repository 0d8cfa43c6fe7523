"""How long torch's OpenMP threads spin before they sleep, chosen before torch is imported.

The flow's arithmetic is many small parallel regions. Between them, libgomp's threads spin for
up to 300,000 iterations by default, which costs nothing on an idle machine but is ruinous when
two fgaug processes share a few cores (CI data-prep steps run side by side): each spins on a core
the other needs: two runs took 3.4 to 5 times as long as one here, 41 times in the run issue 14
reports. With at most 3,000 spins a lone run stays within 10% of the default (0 to +8%) and two
at once take 1.8 to 2.0 times as long as one (``benchmarks/concurrency.py``, figures in
``benchmarks/RESULTS.md``); 1,000 spins share better still but cost a lone ``tiny`` run 10%.

fgaug sets ``GOMP_SPINCOUNT`` only when neither it nor ``OMP_WAIT_POLICY`` is already set and
``FGAUG_OMP`` is not ``leave``; it must run before ``import torch`` (``import fgaug`` first).
"""

from __future__ import annotations

import os

SPIN_COUNT = "3000"


def bound_openmp_spinning() -> None:
    if os.environ.get("FGAUG_OMP") == "leave":
        return
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
