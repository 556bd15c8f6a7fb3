#!/usr/bin/env bash
# One check of the package on a GPU machine (correctness runs to their end, then eager-against-fast speed figures),
# about 8 minutes on one H200; appends its figures to benchmarks/results/gpu_check.csv. No network: a missing core
# package stops it with the package's name. `--dry-run`: the same code paths on the CPU at tiny sizes.
# SMAX's jax stays on the CPU, beside the GPU the networks train on. Options: python benchmarks/gpu_check.py --help
set -euo pipefail
cd "$(dirname "$0")/.."
export JAX_PLATFORMS=cpu
exec python benchmarks/gpu_check.py "$@"
