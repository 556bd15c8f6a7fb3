"""MASAC and MADDPG end to end through the command line.

The learning tests use the Climb game (AORPO §6.1): a greedy return of 25 means both stage games are played at
their Nash equilibrium, the tempting local optimum gives 7.5 and uniform random actions about 5.8. Both methods
reach the equilibrium within 2,000 environment steps.
"""

from pathlib import Path

import pytest
import torch

from lightning_mbmarl.algorithms.maddpg import MADDPG
from lightning_mbmarl.algorithms.masac import MASAC
from lightning_mbmarl.envs import EnvConfig

pytestmark = pytest.mark.slow

SHORT_CLIMB = [
    "--model.init_args.online.total_env_steps=2000",
    "--trainer.val_check_interval=1000",
    "--model.init_args.evaluation.final_episodes=10",
]


def _run_dir(output_dir: Path, experiment: str, version: int = 0) -> Path:
    return output_dir / experiment / f"version_{version}"


@pytest.mark.parametrize(("experiment", "method"), [("masac_climb", MASAC), ("maddpg_climb", MADDPG)])
def test_reaches_the_climb_equilibrium(experiment, method, tmp_path, cli, read_metric, quiet_cli_args):
    result = cli("fit", "--config", f"conf/{experiment}.yaml", *SHORT_CLIMB, *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run_dir(tmp_path / "outputs", experiment)
    assert read_metric(run, "eval/return") >= 20.0  # random: ~5.8, tempting landmark: 7.5, equilibrium: 25
    assert read_metric(run, "counters/env_steps") == 2000
    assert read_metric(run, "counters/gradient_steps") == read_metric(run, "counters/updates") == 749
    # A notebook loads the checkpoint with no trainer and evaluates it in the real environment.
    model = method.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert model.evaluate(episodes=5, seed=1, env_config=EnvConfig("climb", {"episode_length": 25}))["return"] >= 20.0


@pytest.mark.parametrize("method", ["masac.MASAC", "maddpg.MADDPG"])
def test_discrete_actions_on_the_coordination_game(method, tmp_path, cli, read_metric, quiet_cli_args):
    """Discrete SAC / Gumbel-softmax MADDPG run through the same module on a discrete task (a dry run)."""
    result = cli(
        "fit",
        f"--model=lightning_mbmarl.algorithms.{method}",
        "--model.init_args.online.total_env_steps=300",
        "--model.init_args.online.warmup_env_steps=100",
        "--model.init_args.online.batch_size=32",
        "--model.init_args.evaluation.final_episodes=4",
        "--data=lightning_mbmarl.data.online_datamodule.OnlineDataModule",
        "--data.init_args.env.name=icg",
        "--data.init_args.num_envs=2",
        "--data.init_args.buffer_capacity=1000",
        "--trainer.max_epochs=-1",
        "--trainer.num_sanity_val_steps=0",
        "--experiment=icg",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0.0 <= read_metric(_run_dir(tmp_path / "outputs", "icg"), "eval/normalized_score") <= 1.0


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, cli, quiet_cli_args):
    """Stop a MASAC run after 60 training steps, resume it from ``last.ckpt``: the replay buffer, counters and
    optimizer states come back, warm-up is not repeated and no update is lost or repeated."""
    options = [
        "--config",
        "conf/masac_climb.yaml",
        "--model.init_args.online.total_env_steps=1000",
        "--trainer.val_check_interval=1000",
        "--model.init_args.evaluation.final_episodes=2",
        *quiet_cli_args,
    ]
    first = cli("fit", *options, "--trainer.max_steps=180")  # 3 optimizer steps per update: 60 updates
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = _run_dir(tmp_path / "outputs", "masac_climb", 0) / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["mbmarl_counters"]["updates"] == 60 and saved["mbmarl_counters"]["env_steps"] == 500 + 2 * 60
    assert len(saved["optimizer_states"]) == 3

    second = cli("fit", *options, f"--ckpt_path={checkpoint}")
    assert second.returncode == 0, second.stderr[-3000:]
    assert not _run_dir(tmp_path / "outputs", "masac_climb", 1).exists()  # resumed in the run's own folder
    resumed = torch.load(checkpoint, weights_only=False)
    counters = resumed["mbmarl_counters"]
    assert counters["env_steps"] == 1000 and counters["updates"] == counters["gradient_steps"] == 249
    assert resumed["global_step"] == 3 * 249
    stored = resumed["OnlineDataModule"]["ranks"][0]["buffer"]["storage"]["obs"]
    assert stored.shape[0] == 1000 // 4  # every step of the 4 copies is in the buffer, warm-up ones included
