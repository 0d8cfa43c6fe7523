#!/usr/bin/env bash
# The CUDA check of issue 13, in one command from the repository root (see benchmarks/gpu_check.py):
#   bash benchmarks/gpu_check.sh OUT [GLOW2_COPY] [gpu_check.py options...]
# Installs fgaug into the machine's Python without touching its packages or the network, then
# runs every section; OUT receives gpu_check.json, gpu_check.md and gpu_check.log.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUT [GLOW2_COPY] [options]}
shift
glow2=""
if [[ $# -gt 0 && $1 != -* ]]; then  # an option in its place is an option (no copy of glow2)
    glow2=$1
    shift
fi
cd "$(dirname "$0")/.."
if ! python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1; then
    echo "gpu_check: editable install failed; running fgaug from the source tree"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu_check.py "$out" ${glow2:+--glow2 "$glow2"} "$@"
