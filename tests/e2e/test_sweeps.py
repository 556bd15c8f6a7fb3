"""Sweeps on Hydra multirun: grid points as ordinary runs, skipped when finished, resumed when interrupted, one
results file and its report; bad sweeps fail before any job starts."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from lightning_mbmarl.sweeps.code_state import code_commit
from lightning_mbmarl.sweeps.launch import SweepError, check_sweep
from lightning_mbmarl.sweeps.point import Point, flatten_options, grid_values
from lightning_mbmarl.sweeps.report import curve_table, final_table, spread_text
from lightning_mbmarl.sweeps.results import read_results
from lightning_mbmarl.sweeps.schema import register

REPO = Path(__file__).resolve().parents[2]

#: a two-point sweep of the Climb game, a few seconds per point
TINY_SWEEP = """
defaults: [lightning_mbmarl_sweep, _self_]
sweep:
  name: tiny
  metrics: [eval/nash_distance, eval/return]
  threads: 1
  tables:
    - {kind: final, metric: eval/return, rows: experiment, columns: null, digits: 1}
point:
  config: conf/aorpo_climb.yaml
  args:
    model: {init_args: {online: {total_env_steps: TOTAL, warmup_env_steps: 200}}}
    trainer: {val_check_interval: 20}
hydra:
  sweeper:
    params:
      point.seed: 0,1
"""


def write_sweep(folder: Path, total_env_steps: int = 300, text: str = TINY_SWEEP) -> Path:
    sweeps = folder / "sweeps"
    sweeps.mkdir(parents=True, exist_ok=True)
    (sweeps / "tiny.yaml").write_text(text.replace("TOTAL", str(total_env_steps)))
    return sweeps


def sweep_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "sweep",
        "--config-path",
        str(tmp_path / "sweeps"),
        "--config-name",
        "tiny",
        f"sweep.output_dir={tmp_path / 'out'}",
        f"sweep.results={tmp_path / 'results' / 'tiny.csv'}",
        *extra,
    ]


def test_point_options_grid_values_and_folder_name():
    assert flatten_options(
        {"model": {"init_args": {"lr": 0.1, "hidden": [64, 64], "target": None}}, "trainer": {"fast_dev_run": True}}
    ) == [
        "--model.init_args.lr=0.1",
        "--model.init_args.hidden=[64, 64]",
        "--model.init_args.target=null",
        "--trainer.fast_dev_run=true",
    ]
    grid = grid_values(
        {"method": "moma", "dataset": "random"},
        [
            "point.seed=2",
            "+point.args.model.init_args.k=15",
            "sweep.name=x",
            "point.config=a.yaml",
            "point.vars.method=moma",
        ],
    )
    assert grid == (("dataset", "random"), ("method", "moma"), ("model.init_args.k", "15"))
    point = Point(config="conf/aorpo_climb.yaml", seed=2, options=(), grid=grid)
    assert (point.experiment, point.name) == ("aorpo_climb", "dataset=random,method=moma,k=15,seed=2")


def test_spread_over_seeds_hand_worked():
    # 1, 2, 3: mean 2, sample standard deviation 1, standard error 1 / sqrt(3) = 0.577
    assert spread_text([1.0, 2.0, 3.0], "std", 2) == "2.00 ± 1.00"
    assert spread_text([1.0, 2.0, 3.0], "se", 2) == "2.00 ± 0.58"
    assert spread_text([4.0], "std", 1) == "4.0"


def _row(experiment: str, seed: int, env_steps: int, value: float) -> dict[str, str]:
    return {
        "point": f"seed={seed}",
        "experiment": experiment,
        "config": f"conf/{experiment}.yaml",
        "seed": str(seed),
        "env_steps": str(env_steps),
        "eval/return": str(value),
        "seconds": "1",
        "commit": "c",
        "recorded": "t",
    }


def test_tables_hand_worked():
    rows = [_row("a", 0, 4000, -18.0), _row("a", 1, 4000, -20.0), _row("b", 0, 2000, -25.0)]
    curves = [
        _row("a", 0, 1000, -30.0),
        _row("a", 0, 3000, -22.0),
        _row("a", 1, 2000, -24.0),
        _row("a", 0, 4000, -18.0),
        _row("a", 1, 4000, -20.0),
        _row("b", 0, 2000, -25.0),
    ]
    spec = {
        "kind": "curve",
        "metric": "eval/return",
        "columns": "experiment",
        "marks": [1000, 2000, 3000],
        "spread": "std",
        "digits": 1,
        "title": "",
        "labels": {"a": "A"},
    }
    # at 2000: seed 0 -> -30 (its latest at or before 2000 is at 1000), seed 1 -> -24: mean -27, std 4.2;
    # at 3000 b is past its budget (2000 steps): "–"
    assert curve_table(spec, rows, curves, ["experiment"]) == "\n".join(
        [
            "| env steps | A | b |",
            "| --- | --- | --- |",
            "| 1000 | -30.0 | – |",
            "| 2000 | -27.0 ± 4.2 | -25.0 |",
            "| 3000 | -23.0 ± 1.4 | – |",
            "| final | -19.0 ± 1.4 | -25.0 |",
        ]
    )
    final = {
        "kind": "final",
        "metric": "eval/return",
        "rows": "experiment",
        "columns": None,
        "spread": "se",
        "digits": 2,
        "title": "method",
        "labels": {},
    }
    assert final_table(final, rows, ["experiment"]) == "\n".join(
        ["| method | eval/return |", "| --- | --- |", "| a | -19.00 ± 1.00 |", "| b | -25.00 |"]
    )
    mixed = [{**r, "k": str(i)} for i, r in enumerate(rows)]
    with pytest.raises(ValueError, match="mixes points of different settings"):
        final_table(final, mixed, ["experiment", "k"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["point.config=conf/aorpo_clmb.yaml"], "no config file conf/aorpo_clmb.yaml"),
        (["point.sed=1"], "point.sed"),
        (
            ["+point.args.model.init_args.online.total_env_stepz=5"],
            "did you mean --model.init_args.online.total_env_steps",
        ),
        (["point.seed=range(0)"], "the grid is empty"),
        ([], "the grid is empty"),  # a sweep file without a grid
    ],
)
def test_bad_sweeps_fail_before_any_job(tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(REPO)
    register()
    text = TINY_SWEEP if overrides else TINY_SWEEP.replace("    params:\n      point.seed: 0,1\n", "    params: {}\n")
    with pytest.raises(SweepError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check_sweep(write_sweep(tmp_path, text=text), "tiny", overrides)


def test_bad_sweep_command_exits_2_and_starts_nothing(tmp_path, cli):
    write_sweep(tmp_path)
    result = cli(*sweep_args(tmp_path, "point.config=conf/missing.yaml"))
    assert result.returncode == 2, result.stderr
    assert "no config file conf/missing.yaml" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "launcher",
    [
        [],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
    ],
    ids=["basic", "joblib", "submitit_local"],
)
def test_two_point_sweep_records_rows_skips_finished_points_and_reports(tmp_path, cli, launcher):
    write_sweep(tmp_path)
    result = cli(*sweep_args(tmp_path, *launcher))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_results(tmp_path / "results" / "tiny.csv")
    assert sorted((r["point"], r["experiment"], r["seed"], r["env_steps"]) for r in rows) == [
        ("seed=0", "aorpo_climb", "0", "300"),
        ("seed=1", "aorpo_climb", "1", "300"),
    ]
    assert all(-50 < float(r["eval/return"]) <= 25 and int(r["seconds"]) > 0 for r in rows)
    assert {r["commit"] for r in rows} == {code_commit()}  # the code each run ran (with a hash of any changes)
    curves = read_results(tmp_path / "results" / "tiny_curves.csv")
    assert {r["seed"] for r in curves} == {"0", "1"} and len(curves) >= 4  # evaluations every 20 updates
    run_dirs = [tmp_path / "out" / "tiny" / "aorpo_climb" / f"seed={s}" for s in (0, 1)]
    assert all((d / "checkpoints" / "last.ckpt").exists() for d in run_dirs)

    if launcher:
        return  # skipping and the report do not depend on the launcher: checked once, with the basic one
    again = cli(*sweep_args(tmp_path, *launcher))  # finished points are skipped: no new rows, no new attempt
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(read_results(tmp_path / "results" / "tiny.csv")) == 2
    record = json.loads((run_dirs[0].parent / "seed=0.json").read_text())
    assert record["finished"] and len(record["attempts"]) == 1

    report = cli(
        "report",
        "tiny",
        "--config-path",
        str(tmp_path / "sweeps"),
        f"sweep.results={tmp_path / 'results' / 'tiny.csv'}",
    )
    assert report.returncode == 0, report.stderr
    mean = sum(float(r["eval/return"]) for r in rows) / 2
    assert report.stdout.splitlines()[:3] == [
        "| experiment | eval/return |",
        "| --- | --- |",
        f"| aorpo_climb | {mean:.1f} ± {_std(rows):.1f} |",
    ]
    assert (tmp_path / "results" / "tiny_eval_return.png").stat().st_size > 0


def _std(rows: list[dict[str, str]]) -> float:
    import statistics

    return statistics.stdev(float(r["eval/return"]) for r in rows)


def test_a_point_stopped_mid_run_saves_and_resumes_from_its_checkpoint(tmp_path, cli, started_cli):
    write_sweep(tmp_path, total_env_steps=1000)  # long enough to be stopped after its first checkpoint
    sweep = started_cli(*sweep_args(tmp_path, "point.seed=0"))
    run_dir = tmp_path / "out" / "tiny" / "aorpo_climb" / "seed=0"
    deadline = time.time() + 300
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert sweep.poll() is None and time.time() < deadline, sweep.communicate()[1][-3000:]
        time.sleep(0.5)
    running = json.loads((run_dir.parent / "seed=0.json").read_text())  # the attempt is on record while it runs,
    assert running["attempts"][0]["exit"] is None  # so a machine lost mid-run leaves the time it ran on the books
    sweep.send_signal(signal.SIGUSR2)  # SLURM's time-limit warning under submitit: forwarded to the run as SIGTERM
    assert sweep.wait(timeout=300) == 128 + signal.SIGUSR2
    record = json.loads((run_dir.parent / "seed=0.json").read_text())
    assert not record["finished"] and record["attempts"][0]["exit"] == 128 + signal.SIGTERM
    assert not (tmp_path / "results" / "tiny.csv").exists()

    resumed = cli(*sweep_args(tmp_path, "point.seed=0"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((run_dir.parent / "seed=0.json").read_text())
    assert record["finished"] and [a["resumed"] for a in record["attempts"]] == [False, True]
    assert "--ckpt_path=" in record["command"][-1]
    rows = read_results(tmp_path / "results" / "tiny.csv")
    assert len(rows) == 1 and rows[0]["env_steps"] == "1000"
    assert list(run_dir.glob("config_resume_*.yaml")), "the resumed attempt continued in the same run folder"


def test_submitit_slurm_job_is_built_from_the_sweep_file(tmp_path, monkeypatch):
    """The sbatch script Hydra's submitit launcher would submit, checked without a cluster."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    from lightning_mbmarl.sweeps.launch import run_point

    slurm = """
  launcher:
    partition: gpu
    gpus_per_node: 4
    tasks_per_node: 4
    cpus_per_task: 8
    mem_gb: 64
    timeout_min: 240
    max_num_timeout: 3
    signal_delay_s: 90
"""
    sweeps = write_sweep(tmp_path, text=TINY_SWEEP.replace("hydra:\n", "hydra:" + slurm))
    monkeypatch.chdir(REPO)
    register()
    bin_dir = tmp_path / "bin"  # submitit looks for srun on PATH before it builds a SLURM executor; nothing runs it
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    captured = {}

    class Submitted(Exception):
        pass

    def capture(executor, fn, *arguments):
        captured["script"] = executor._executor._make_submission_file_text("COMMAND", "uid")
        captured["jobs"] = list(zip(*arguments))
        raise Submitted

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(sweeps), version_base="1.3"):
        config = compose(
            "tiny",
            overrides=["hydra/launcher=submitit_slurm", f"sweep.output_dir={tmp_path / 'out'}"],
            return_hydra_config=True,
        )
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=context, task_function=run_point, config=config
        )
        with pytest.raises(Submitted):
            launcher.launch([["point.seed=0"], ["point.seed=1"]], initial_job_idx=0)
    GlobalHydra.instance().clear()
    script = captured["script"]
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@90",
    ]:
        assert line in script, f"{line} missing from:\n{script}"
    assert [job[0] for job in captured["jobs"]] == [["point.seed=0"], ["point.seed=1"]]


@pytest.mark.parametrize("sweep_file", sorted((REPO / "conf" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sweep_checks_and_its_tables_reprint_as_documented(sweep_file, monkeypatch):
    """Each sweep file's grid is valid, and once it has results, ``report`` prints exactly the tables its
    document (README or docs page) shows."""
    from lightning_mbmarl.sweeps.launch import load_settings
    from lightning_mbmarl.sweeps.report import report

    monkeypatch.chdir(REPO)
    register()
    assert check_sweep(sweep_file.parent, sweep_file.stem, [])
    settings = load_settings(sweep_file.parent, sweep_file.stem, [])
    if not Path(settings["results"]).exists():
        pytest.skip(f"{settings['results']}: the sweep has not run yet")
    tables = [t for t in report(settings, plots=False).split("\n\n") if len(t.splitlines()) > 2]  # with results
    if not tables:
        pytest.skip(f"{settings['results']} holds no results for the tables of {sweep_file.stem} yet")
    assert settings["document"], f"{sweep_file}: name the page that prints its tables in sweep.document"
    document = (REPO / settings["document"]).read_text()
    for table in tables:
        assert table in document, f"{settings['document']} does not print this table of {sweep_file.stem}:\n{table}"


SEARCH_SWEEP = """
defaults: [lightning_mbmarl_sweep, _self_]
sweep:
  name: tiny
  metrics: [eval/return]
  objective: eval/return
  threads: 1
point:
  config: conf/aorpo_climb.yaml
  args:
    model: {init_args: {online: {total_env_steps: 300, warmup_env_steps: 200}, masac: {actor_lr: 0.001}}}
hydra:
  sweeper:
    direction: maximize
    n_trials: 2
    sampler: {seed: 0}
    params:
      point.args.model.init_args.masac.actor_lr: interval(0.0001, 0.01)
"""


def test_optuna_search_records_trials_and_writes_the_best_point(tmp_path, cli):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the search extra: pip install -e '.[search]'")
    import yaml

    write_sweep(tmp_path, text=SEARCH_SWEEP)
    result = cli(*sweep_args(tmp_path, "hydra/sweeper=optuna"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_results(tmp_path / "results" / "tiny.csv")
    assert len(rows) == 2 and len({r["model.init_args.masac.actor_lr"] for r in rows}) == 2
    best = yaml.safe_load((tmp_path / "results" / "tiny_best.yaml").read_text())
    top = max(rows, key=lambda r: float(r["eval/return"]))
    assert best["best_value"] == pytest.approx(float(top["eval/return"]))
    assert best["best_params"] == {
        "point.args.model.init_args.masac.actor_lr": pytest.approx(float(top["model.init_args.masac.actor_lr"]))
    }
    assert best["trials_recorded"] == 2


def test_a_search_without_objective_or_with_an_unknown_key_fails_before_any_job(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the search extra: pip install -e '.[search]'")
    monkeypatch.chdir(REPO)
    register()
    sweeps = write_sweep(tmp_path, text=SEARCH_SWEEP.replace("  objective: eval/return\n", ""))
    with pytest.raises(SweepError, match="sweep.objective"):
        check_sweep(sweeps, "tiny", ["hydra/sweeper=optuna"])
    sweeps = write_sweep(tmp_path, text=SEARCH_SWEEP.replace("masac.actor_lr: interval", "masac.critic_lr: interval"))
    with pytest.raises(SweepError, match="give it a default"):
        check_sweep(sweeps, "tiny", ["hydra/sweeper=optuna"])


def test_config_groups_choose_a_points_config_budget_and_ablation(monkeypatch):
    """``aorpo_mpe_spread`` takes each point's method (config and budget), settings and ablation variant from the
    config groups of ``conf/sweeps/mpe_spread/``: their values are the point's grid values, their options its own."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lightning_mbmarl.sweeps.point import make_point

    monkeypatch.chdir(REPO)
    register()
    job = [
        "mpe_spread/method=aorpo",
        "mpe_spread/settings=released",
        "mpe_spread/variant=package_learner_no_model_data",
        "point.seed=3",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO / "conf" / "sweeps"), version_base="1.3"):
        point = make_point(compose("aorpo_mpe_spread", overrides=job).point, job)
    GlobalHydra.instance().clear()
    assert point.config == "conf/aorpo_mpe_spread_released.yaml"
    assert point.name == "method=aorpo,settings=released,variant=package_learner_no_model_data,seed=3"
    assert {
        "--model.init_args.online.total_env_steps=12000",
        "--model.init_args.aorpo.real_ratio=1.0",
        "--model.init_args.online.batch_size=1024",
        "--model.init_args.masac.tau=0.01",
    } <= set(point.options)
    # released settings exist for AORPO and MASAC only: the grid fails before any job, naming the missing config
    with pytest.raises(SweepError, match="no config file conf/aordpg_mpe_spread_released.yaml"):
        check_sweep(REPO / "conf" / "sweeps", "aorpo_mpe_spread", ["mpe_spread/settings=released"])


def test_a_single_column_final_table_takes_its_references_by_metric():
    rows = [_row("a", 0, 100, 1.0), _row("a", 1, 100, 3.0)]
    spec = {
        "kind": "final",
        "metric": "eval/return",
        "rows": "experiment",
        "columns": None,
        "spread": "std",
        "digits": 1,
        "title": "final",
        "references": {"eval/return": {"a": "2.5 ± 0.1"}},
        "reference_label": "paper",
    }
    assert final_table(spec, rows, ["experiment"]).splitlines() == [
        "| final | eval/return | eval/return (paper) |",
        "| --- | --- | --- |",
        "| a | 2.0 ± 1.4 | 2.5 ± 0.1 |",
    ]


def test_a_running_point_notes_its_time_as_it_goes(tmp_path):
    """The heartbeat runs while the command does (a killed sweep keeps its attempt's time to the last beat)."""
    from lightning_mbmarl.sweeps.point import run_forwarding_stops

    beats: list[float] = []
    with open(tmp_path / "log", "w") as log:
        status, stop = run_forwarding_stops(
            [sys.executable, "-c", "import time; time.sleep(1.3)"], dict(os.environ), log, lambda: beats.append(1), 0.4
        )
    assert status == 0 and stop is None and len(beats) >= 2


def test_a_sweep_name_with_no_file_names_the_sweeps_there(tmp_path):
    from lightning_mbmarl.sweeps.launch import load_settings

    config_dir = write_sweep(tmp_path)
    with pytest.raises(SweepError, match=r"no sweep 'tinny' in .*: did you mean tiny\? the sweeps there: tiny"):
        check_sweep(config_dir, "tinny", [])
    with pytest.raises(SweepError, match=r"no sweep 'other'"):
        load_settings(config_dir, "other", [])
    with pytest.raises(SweepError, match=r"name a sweep: one of the files in .*: tiny$"):  # `report` alone
        load_settings(config_dir, "", [])
