#!/usr/bin/env bash
# Run here, before a GPU check: saves into .whl/ (ignored by git) the wheels of the packages the GPU machine's image
# lacks (it has torch, lightning, torchmetrics, jax, flax, chex, h5py, numpy, matplotlib, tensorboard, pyyaml, rich;
# /work/.library/device/KINDS.md lists them), at the versions this machine's install runs, for the GPU machine's
# Python 3.12. antlr4-python3-runtime (omegaconf's parser) exists only as a source package: built into a wheel here.
# All are pure Python (about 3 MB). benchmarks/gpu_session.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(jsonargparse docstring_parser typeshed_client omegaconf hydra-core importlib_resources gymnasium
  farama-notifications jaxmarl gymnax)
pinned=$(python3 - "${packages[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
except PackageNotFoundError as missing:
    sys.exit(f"gpu_wheels: {missing.name} is not installed here; install the package with its extras first: "
             'pip install -e ".[test,smax]"')
PY
)
rm -rf .whl && mkdir -p .whl
# shellcheck disable=SC2086
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pinned
python3 -m pip wheel --quiet --no-deps -w .whl antlr4-python3-runtime==4.9.3
# the GPU machine's copy of the tree has no git history: the code's label travels with the wheels
python3 -c "from lightning_mbmarl.sweeps.code_state import code_commit; print(code_commit())" > .whl/code_label
ls .whl
echo "gpu_wheels: $(ls .whl/*.whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1)), code $(cat .whl/code_label);" \
  "carry .whl in the device run"
