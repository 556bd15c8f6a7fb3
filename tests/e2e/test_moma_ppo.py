"""MOMA-PPO and IBC end to end through the command line on the offline Iterated Coordination Game.

The learning test is the paper's Table 3 result on the hardest dataset: MOMA-PPO agrees on a convention from
miscoordinated data (greedy score >= 0.95) where independent behavioural cloning fails (<= 0.1).
"""

from pathlib import Path

import pytest
import torch

from lightning_mbmarl.algorithms.moma_ppo import MOMAPPO
from lightning_mbmarl.envs import EnvConfig

pytestmark = pytest.mark.slow


def _run_dir(output_dir: Path, experiment: str, version: int = 0) -> Path:
    return output_dir / experiment / f"version_{version}"


def test_moma_ppo_solves_the_unfavorable_dataset(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli(
        "fit",
        "--config",
        "conf/moma_icg_unfavorable.yaml",
        "--seed_everything=3",
        f"--data.init_args.dataset_path={tmp_path / 'icg_unfavorable.hdf5'}",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run_dir(tmp_path / "outputs", "moma_icg_unfavorable")
    assert read_metric(run, "eval/normalized_score") >= 0.95
    assert read_metric(run, "counters/policy_iterations") == 30
    assert 1.0 <= read_metric(run, "rollouts/rollout_length") <= 10.0
    assert read_metric(run, "world_model/elite_held_out_error") >= 0.0
    assert (run / "config.yaml").exists() and (run / "plots" / "eval_normalized_score.png").exists()
    # A notebook loads the checkpoint with no trainer and evaluates it in the real environment.
    model = MOMAPPO.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert (
        model.evaluate(episodes=10, seed=0, env_config=EnvConfig("icg", {"episode_length": 10}))["normalized_score"]
        >= 0.95
    )


def test_ibc_fails_on_the_unfavorable_dataset(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli(
        "fit",
        "--config",
        "conf/ibc_icg_unfavorable.yaml",
        "--model.init_args.ibc.steps=500",
        f"--data.init_args.dataset_path={tmp_path / 'icg_unfavorable.hdf5'}",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metric(_run_dir(tmp_path / "outputs", "ibc_icg_unfavorable"), "eval/normalized_score") <= 0.1


SHORT_MOMA = [
    "--model.init_args.moma.world_model_steps=40",
    "--model.init_args.moma.world_model_log_interval=20",
    "--model.init_args.moma.rollout_starts=32",
    "--model.init_args.mappo.minibatch_size=64",
    "--trainer.val_check_interval=20",
    "--model.init_args.evaluation.final_episodes=10",
]


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, cli, quiet_cli_args):
    """Stop a run mid-way through a MAPPO round (``max_steps``), resume it from ``last.ckpt``: the world model is not
    trained again, the half-used rollout batch is finished, and no gradient step is lost or repeated."""
    options = [
        "--config",
        "conf/moma_icg_neutral.yaml",
        *SHORT_MOMA,
        "--model.init_args.moma.policy_iterations=4",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        *quiet_cli_args,
    ]
    first = cli("fit", *options, "--trainer.max_steps=70")
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = _run_dir(tmp_path / "outputs", "moma_icg_neutral", 0) / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint)
    assert saved["global_step"] == 70
    assert saved["mbmarl_counters"]["world_model_steps"] == 40
    assert saved["mbmarl_counters"]["policy_iterations"] < 4
    assert "moma_rollout_queue" in saved  # interrupted inside a round

    second = cli("fit", *options, f"--ckpt_path={checkpoint}")
    assert second.returncode == 0, second.stderr[-3000:]
    assert not _run_dir(tmp_path / "outputs", "moma_icg_neutral", 1).exists()  # resumed in the run's own folder
    resumed = torch.load(checkpoint)
    counters = resumed["mbmarl_counters"]
    assert counters["world_model_steps"] == 40 and counters["policy_iterations"] == 4
    assert resumed["global_step"] == counters["world_model_steps"] + counters["policy_updates"]
    for key, value in resumed["state_dict"].items():
        if key.startswith("model_env."):
            torch.testing.assert_close(value, saved["state_dict"][key], msg=f"{key} changed after resuming")


def test_two_process_ddp_on_cpu(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli(
        "fit",
        "--config",
        "conf/moma_icg_favorable.yaml",
        *SHORT_MOMA,
        "--model.init_args.moma.policy_iterations=2",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run_dir(tmp_path / "outputs", "moma_icg_favorable")
    assert read_metric(run, "counters/policy_iterations") == 2
    assert 0.0 <= read_metric(run, "eval/normalized_score") <= 1.0
    assert not (tmp_path / "outputs" / "moma_icg_favorable" / "version_1").exists()  # both ranks shared one folder
