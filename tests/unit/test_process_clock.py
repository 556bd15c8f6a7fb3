"""benchmarks/process_clock.py: a script run through it times with this process's CPU time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WRAPPER = Path(__file__).resolve().parents[2] / "benchmarks" / "process_clock.py"


def test_script_sees_process_time_and_its_own_arguments(tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text(
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "time.sleep(0.3)  # waiting costs no CPU time\n"
        "print(time.perf_counter is time.process_time, time.perf_counter() - start < 0.1, sys.argv[1:])\n"
    )
    out = subprocess.run([sys.executable, str(WRAPPER), str(script), "--x", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "True True ['--x', '1']"


def test_missing_script_is_named(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(WRAPPER), str(tmp_path / "none.py")], capture_output=True, text=True)
    assert out.returncode != 0 and "no script at" in out.stderr and "none.py" in out.stderr
