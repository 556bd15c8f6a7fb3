#!/usr/bin/env bash
# The one command of a device run on a lent GPU machine (benchmarks/README.md, "On the GPU"): installs the wheels
# benchmarks/gpu_wheels.sh saved in .whl/ (carried; another folder: GPU_WHEELS=...), then runs the GPU check with its
# figures and log under $OUT, so that they come back even when the run is cut off. Arguments go to gpu_check.py
# (e.g. --skip-correctness, --budget 300).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?gpu_session: OUT must name the folder whose files come back from the device machine}"
wheels=${GPU_WHEELS:-.whl}
if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$wheels"/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [[ -f "$wheels/code_label" ]]; then
  GPU_CHECK_CODE_LABEL=$(cat "$wheels/code_label")
  export GPU_CHECK_CODE_LABEL  # the commit column, where the copy of the tree here has no git history
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/gpu_check.log"
PYTHONUNBUFFERED=1 bash benchmarks/gpu_check.sh --results "$OUT/gpu_check.csv" "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
