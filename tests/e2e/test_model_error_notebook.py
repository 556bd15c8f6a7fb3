"""notebooks/model_error.ipynb runs top to bottom on tiny MAMBA and MAG checkpoints (trained here for 2 iterations),
of discrete-action SMAX and of continuous-action MaMuJoCo Humanoid."""

from pathlib import Path

import pytest

from lightning_mbmarl.cli import RUN_DIR_ENV, build_cli

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat and nbclient")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbformat and nbclient")

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "model_error.ipynb"
TINY = [
    "--model.init_args.online.total_env_steps=200",
    "--model.init_args.online.warmup_env_steps=100",
    "--model.init_args.online.env_steps_per_update=50",
    "--model.init_args.online.batch_size=2",
    "--model.init_args.mamba.sequence_length=6",
    "--model.init_args.mamba.model_updates=1",
    "--model.init_args.mamba.policy_rounds=1",
    "--model.init_args.mamba.imagination_horizon=3",
    "--model.init_args.world_model.hidden=8",
    "--model.init_args.world_model.embed=8",
    "--model.init_args.world_model.deter=8",
    "--model.init_args.world_model.categoricals=2",
    "--model.init_args.world_model.classes=2",
    "--model.init_args.world_model.attention_layers=1",
    "--model.init_args.world_model.attention_heads=1",
    "--model.init_args.world_model.attention_feedforward=8",
    "--model.init_args.mappo.hidden=[8]",
    "--model.init_args.critic.attention_heads=1",
    "--model.init_args.mappo.epochs=1",
    "--data.init_args.num_envs=2",
    "--trainer.limit_val_batches=0",
    "--trainer.logger=false",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
MAG_TINY = [
    "--model.init_args.planning.horizon=2",
    "--model.init_args.model_reward.hidden=8",
    "--model.init_args.model_reward.layers=1",
]


def tiny_checkpoint(method: str, task: str, output_dir: Path, monkeypatch) -> Path:
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    extra = MAG_TINY if method == "mag" else []
    cli = build_cli(["--config", f"conf/{method}_{task}.yaml", *TINY, *extra, f"--output_dir={output_dir}"], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    path = output_dir / f"{method}.ckpt"
    cli.trainer.save_checkpoint(path)
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    return path


@pytest.mark.parametrize("task", ["smax_2s3z", "mamujoco_humanoid"])
def test_model_error_notebook_runs_on_tiny_checkpoints(task, tmp_path, monkeypatch):
    if task.startswith("mamujoco"):
        pytest.importorskip(
            "gymnasium_robotics", reason="MaMuJoCo needs the mamujoco extra: pip install -e '.[mamujoco]'"
        )
    monkeypatch.chdir(NOTEBOOK.parents[1])
    monkeypatch.setattr("sys.argv", ["lightning_mbmarl"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MAMBA_CHECKPOINT", str(tiny_checkpoint("mamba", task, tmp_path, monkeypatch)))
    monkeypatch.setenv("MAG_CHECKPOINT", str(tiny_checkpoint("mag", task, tmp_path, monkeypatch)))
    monkeypatch.setenv("MODEL_ERROR_HORIZON", "3")
    monkeypatch.setenv("MODEL_ERROR_WINDOWS", "32")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "MAMBA - MAG" in printed and "step  3" in printed
    assert any("image/png" in output.get("data", {}) for output in notebook.cells[-1].outputs)  # the figure


QUICKSTART = NOTEBOOK.parent / "quickstart.ipynb"


def run_notebook(path: Path) -> list:
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return notebook.cells


def test_quickstart_notebook_evaluates_plots_and_shows_an_episode(tmp_path, monkeypatch, cli):
    result = cli(
        "fit",
        "--config",
        "conf/moma_icg_unfavorable.yaml",
        "--model.init_args.moma.world_model_steps=50",
        "--model.init_args.moma.policy_iterations=2",
        "--model.init_args.moma.rollout_starts=16",
        "--trainer.val_check_interval=20",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        f"--output_dir={tmp_path / 'outputs'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    monkeypatch.setenv("QUICKSTART_RUN", str(tmp_path / "outputs" / "moma_icg_unfavorable" / "version_0"))
    monkeypatch.setenv("QUICKSTART_EPISODES", "5")
    cells = run_notebook(QUICKSTART)
    printed = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert "MOMAPPO on icg" in printed and "normalized_score" in printed and "episode return" in printed
    assert any("image/png" in o.get("data", {}) for c in cells if c.cell_type == "code" for o in c.outputs)


def test_notebooks_say_clearly_when_their_checkpoints_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_RUN", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MAMBA_CHECKPOINT", str(tmp_path / "nowhere.ckpt"))
    for path in (QUICKSTART, NOTEBOOK):
        with pytest.raises(nbclient.exceptions.CellExecutionError, match="Train .* first"):
            run_notebook(path)
