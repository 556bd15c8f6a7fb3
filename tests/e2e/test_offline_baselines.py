"""The model-free offline baselines end to end through the command line.

* MAIQL on the favorable Iterated Coordination Game dataset reaches the paper's Table 3 score (1.0) in 500 steps.
* ITD3+BC runs on a small continuous dataset collected in MaMuJoCo Reacher 2x1 with a random policy: finite
  losses, an evaluation logged, a checkpoint a notebook can load.
"""

from pathlib import Path

import numpy as np
import pytest

from lightning_mbmarl.algorithms.maiql import MAIQL
from lightning_mbmarl.envs import EnvConfig

pytestmark = pytest.mark.slow


def _run_dir(output_dir: Path, experiment: str) -> Path:
    return output_dir / experiment / "version_0"


def test_maiql_coordinates_on_the_favorable_dataset(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli(
        "fit",
        "--config",
        "conf/maiql_icg_favorable.yaml",
        "--model.init_args.steps=500",
        "--trainer.val_check_interval=250",
        "--model.init_args.evaluation.final_episodes=20",
        f"--data.init_args.dataset_path={tmp_path / 'icg_favorable.hdf5'}",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run_dir(tmp_path / "outputs", "maiql_icg_favorable")
    assert read_metric(run, "eval/normalized_score") >= 0.95
    assert read_metric(run, "counters/gradient_steps") == 500
    model = MAIQL.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    icg = EnvConfig("icg", {"episode_length": 10})
    assert model.evaluate(episodes=5, seed=0, env_config=icg)["normalized_score"] >= 0.95


ITD3BC_CONFIG = """\
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: -1
  val_check_interval: 50
  check_val_every_n_epoch: null
  num_sanity_val_steps: 0
  log_every_n_steps: 10
model:
  class_path: lightning_mbmarl.algorithms.itd3_bc.ITD3BC
  init_args:
    steps: 100
    td3_bc: {{hidden: [32, 32]}}
    evaluation: {{episodes: 2, final_episodes: 2}}
data:
  class_path: lightning_mbmarl.data.offline_datamodule.OfflineDataModule
  init_args:
    env: {{name: mamujoco, kwargs: {{scenario: Reacher, agent_conf: 2x1}}}}
    dataset_path: {dataset}
    batch_size: 64
"""


def test_itd3bc_runs_on_a_small_reacher_dataset(tmp_path, cli, read_metric, quiet_cli_args):
    pytest.importorskip("gymnasium_robotics", reason="MaMuJoCo needs the mamujoco extra: pip install -e '.[mamujoco]'")
    from lightning_mbmarl.data.collection import collect_dataset
    from lightning_mbmarl.data.hdf5_format import write_dataset

    def uniform(team, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, (team.obs.shape[0], 2, 1)).astype(np.float32)

    env = EnvConfig("mamujoco", {"scenario": "Reacher", "agent_conf": "2x1"})
    dataset = write_dataset(
        tmp_path / "reacher_random.hdf5",
        collect_dataset(env, uniform, episodes=8, seed=0, num_envs=4, produced_by="uniform random"),
    )
    config = tmp_path / "itd3bc_reacher_test.yaml"
    config.write_text(ITD3BC_CONFIG.format(dataset=dataset))
    # Run from tmp_path: MuJoCo may write MUJOCO_LOG.TXT into the working directory.
    result = cli("fit", "--config", str(config), *quiet_cli_args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run_dir(tmp_path / "outputs", "itd3bc_reacher_test")
    assert read_metric(run, "counters/gradient_steps") == 100
    for key in ("td3_bc/critic_loss", "td3_bc/actor_loss", "eval/return"):
        assert np.isfinite(read_metric(run, key)), key
    assert read_metric(run, "eval/length") == 50  # Reacher's time limit
