"""``python -m lightning_mbmarl ...``: see :mod:`lightning_mbmarl.cli`."""

import sys

from lightning_mbmarl.cli import main

if __name__ == "__main__":
    sys.exit(main())
