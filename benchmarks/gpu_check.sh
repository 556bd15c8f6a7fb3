#!/usr/bin/env bash
# One check of the package on a GPU machine (correctness runs to their end, then eager-against-fast speed figures),
# at most 8 minutes on one H200 (--budget); appends each figure, as it is measured, to
# benchmarks/results/gpu_check.csv. No network: a missing core package stops it with the package's name. `--dry-run`:
# the same code paths on the CPU at tiny sizes. SMAX's jax stays on the CPU, beside the GPU the networks train on.
# Options: python3 benchmarks/gpu_check.py --help. On a lent GPU machine, benchmarks/gpu_session.sh runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
export JAX_PLATFORMS=cpu
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this checkout, installed or not
exec python3 benchmarks/gpu_check.py "$@"
