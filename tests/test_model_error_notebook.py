"""notebooks/model_error.ipynb runs top to bottom on tiny MAMBA and MAG checkpoints (trained here for 2 iterations)."""

from pathlib import Path

import pytest

from lightning_mbmarl.cli import RUN_DIR_ENV, build_cli

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat and nbclient")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbformat and nbclient")

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "model_error.ipynb"
TINY = [
    "--model.init_args.online.total_env_steps=200", "--model.init_args.online.warmup_env_steps=100",
    "--model.init_args.online.env_steps_per_update=50", "--model.init_args.online.batch_size=2",
    "--model.init_args.mamba.sequence_length=6", "--model.init_args.mamba.model_updates=1",
    "--model.init_args.mamba.policy_rounds=1", "--model.init_args.mamba.imagination_horizon=3",
    "--model.init_args.world_model.hidden=8", "--model.init_args.world_model.embed=8",
    "--model.init_args.world_model.deter=8", "--model.init_args.world_model.categoricals=2",
    "--model.init_args.world_model.classes=2", "--model.init_args.world_model.attention_layers=1",
    "--model.init_args.world_model.attention_heads=1", "--model.init_args.world_model.attention_feedforward=8",
    "--model.init_args.mappo.hidden=[8]", "--model.init_args.critic.attention_heads=1",
    "--model.init_args.mappo.epochs=1", "--data.init_args.num_envs=2",
    "--trainer.limit_val_batches=0", "--trainer.logger=false", "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]
MAG_TINY = ["--model.init_args.planning.horizon=2", "--model.init_args.model_reward.hidden=8",
            "--model.init_args.model_reward.layers=1"]


def tiny_checkpoint(method: str, output_dir: Path, monkeypatch) -> Path:
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    extra = MAG_TINY if method == "mag" else []
    cli = build_cli(["--config", f"conf/{method}_smax_2s3z.yaml", *TINY, *extra, f"--output_dir={output_dir}"],
                    run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    path = output_dir / f"{method}.ckpt"
    cli.trainer.save_checkpoint(path)
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    return path


def test_model_error_notebook_runs_on_tiny_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(NOTEBOOK.parents[1])
    monkeypatch.setattr("sys.argv", ["lightning_mbmarl"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MAMBA_CHECKPOINT", str(tiny_checkpoint("mamba", tmp_path, monkeypatch)))
    monkeypatch.setenv("MAG_CHECKPOINT", str(tiny_checkpoint("mag", tmp_path, monkeypatch)))
    monkeypatch.setenv("MODEL_ERROR_HORIZON", "3")
    monkeypatch.setenv("MODEL_ERROR_WINDOWS", "32")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "MAMBA - MAG" in printed and "step  3" in printed
    assert any("image/png" in output.get("data", {}) for output in notebook.cells[-1].outputs)  # the figure
