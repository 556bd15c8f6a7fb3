"""Run a benchmark script with its clock replaced by this process's CPU time.

    OMP_NUM_THREADS=1 python benchmarks/process_clock.py benchmarks/latent_speed.py --methods mag --iterations 2

``time.perf_counter`` becomes ``time.process_time`` for the script and everything it imports, so the seconds it
reports count only the work of this process (its threads included: SMAX's XLA threads, data loaders), not the time
it waited while other jobs held the cores. For A/B figures measured beside training runs, where wall times move by
tens of percent with the other jobs' phases.
It works on any script that times with ``time.perf_counter`` (the package's speed benchmarks, and those of older
commits, run from their own checkout).
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(f"usage: python {sys.argv[0]} SCRIPT [ARGS...]")
    script = Path(sys.argv[1])
    if not script.is_file():
        raise SystemExit(f"process_clock: no script at {script}")
    time.perf_counter = time.process_time
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(script.parent))  # the script's own helper modules (benchmarks/timing.py)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
