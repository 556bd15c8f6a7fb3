"""benchmarks/pilot_rows.py: each evaluation of a pilot run with the training diagnostics averaged over the
environment steps before it (hand-worked)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pilot_rows.py"

METRICS = """step,env_steps,mappo/entropy,mappo/imagined_return,world_model/loss,eval/env_steps,eval/won_rate,eval/return
1,400,0.9,,2.0,,,
2,600,0.5,1.0,1.0,,,
3,1000,0.3,2.0,,,,
4,,,,,1000,0.25,1.5
5,1400,0.1,3.0,0.5,,,
6,,,,,1500,0.5,1.75
"""


def test_each_evaluation_gets_the_diagnostics_of_the_steps_before_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(METRICS)
    out = tmp_path / "pilot.csv"
    for _ in range(2):  # appends
        subprocess.run([sys.executable, str(SCRIPT), str(run), "seed 0 (pilot)", str(out)], check=True)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and rows[:2] == rows[2:]
    first, second = rows[:2]
    # evaluation at 1000 steps: training rows at 600 and 1000 lie in (500, 1000]; 400 does not
    assert first["run"] == "seed 0 (pilot)" and first["env_steps"] == "1000" and float(first["eval/won_rate"]) == 0.25
    assert float(first["mappo/entropy"]) == (0.5 + 0.3) / 2
    assert float(first["mappo/imagined_return"]) == (1.0 + 2.0) / 2
    assert float(first["world_model/loss"]) == 1.0  # the row at 1000 logged no loss
    # evaluation at 1500: only the row at 1400 is in (1000, 1500]
    assert second["env_steps"] == "1500" and float(second["mappo/entropy"]) == 0.1
    assert float(second["world_model/loss"]) == 0.5

    only = tmp_path / "evaluations.csv"  # a model-free run: its evaluations alone
    subprocess.run([sys.executable, str(SCRIPT), str(run), "mappo", str(only), "--diagnostics"], check=True)
    assert list(csv.DictReader(only.open())) == [
        {"run": "mappo", "env_steps": "1000", "eval/won_rate": "0.25", "eval/return": "1.5"},
        {"run": "mappo", "env_steps": "1500", "eval/won_rate": "0.5", "eval/return": "1.75"},
    ]

    chosen = tmp_path / "chosen.csv"  # other evaluation metrics (Flatland's arrivals, say): only those columns
    subprocess.run(
        [sys.executable, str(SCRIPT), str(run), "r", str(chosen), "--diagnostics", "--evaluation", "eval/return"],
        check=True,
    )
    assert [row["eval/return"] for row in csv.DictReader(chosen.open())] == ["1.5", "1.75"]
    assert list(next(csv.DictReader(chosen.open()))) == ["run", "env_steps", "eval/return"]

    (run / "metrics.csv").write_text(METRICS.split("4,,")[0])  # no evaluation yet: one clear error, nothing written
    empty = subprocess.run([sys.executable, str(SCRIPT), str(run), "x", "-"], capture_output=True, text=True)
    assert empty.returncode == 2 and "holds no evaluation" in empty.stderr and not empty.stdout
