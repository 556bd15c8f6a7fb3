"""MAMBA and MAG end to end through the command line: MAG on SMAX 2s3z at tiny sizes, in one process and in
two-process DDP on CPU with bf16-mixed; MAMBA, MAG and MABL learning the Iterated Coordination Game from imagined
play; checkpoints moving between compiled and eager runs."""

from pathlib import Path

import pytest
import torch

from lightning_mbmarl.algorithms.mag import MAG

pytestmark = pytest.mark.slow

# A few hundred environment steps with tiny networks; everything else is conf/mag_smax_2s3z.yaml.
TINY = [
    "--model.init_args.online.total_env_steps=300",
    "--model.init_args.online.warmup_env_steps=100",
    "--model.init_args.online.env_steps_per_update=50",
    "--model.init_args.online.batch_size=4",
    "--model.init_args.mamba.sequence_length=8",
    "--model.init_args.mamba.model_updates=2",
    "--model.init_args.mamba.policy_rounds=1",
    "--model.init_args.mamba.imagination_horizon=5",
    "--model.init_args.world_model.hidden=16",
    "--model.init_args.world_model.embed=16",
    "--model.init_args.world_model.deter=16",
    "--model.init_args.world_model.categoricals=4",
    "--model.init_args.world_model.classes=4",
    "--model.init_args.world_model.attention_layers=1",
    "--model.init_args.world_model.attention_heads=2",
    "--model.init_args.world_model.attention_feedforward=16",
    "--model.init_args.mappo.hidden=[16,16]",
    "--model.init_args.mappo.minibatch_size=64",
    "--model.init_args.mappo.epochs=1",
    "--model.init_args.critic.attention_heads=2",
    "--model.init_args.planning.horizon=3",
    "--model.init_args.model_reward.hidden=16",
    "--model.init_args.model_reward.layers=1",
    "--model.init_args.evaluation.episodes=2",
    "--model.init_args.evaluation.final_episodes=2",
    "--data.init_args.num_envs=2",
    "--trainer.val_check_interval=2",
    "--trainer.callbacks.init_args.trajectories=16",  # the last callback: ModelErrorCurve
]


def _run(output_dir: Path) -> Path:
    return output_dir / "mag_smax_2s3z" / "version_0"


def test_mag_trains_on_smax(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli("fit", "--config", "conf/mag_smax_2s3z.yaml", "--seed_everything=1", *TINY, *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run(tmp_path / "outputs")
    assert read_metric(run, "eval/env_steps") >= 300
    assert 0.0 <= read_metric(run, "eval/won_rate") <= 1.0
    assert read_metric(run, "counters/world_model_steps") == 2 * read_metric(run, "counters/updates")
    assert torch.isfinite(torch.tensor(read_metric(run, "model_reward/loss")))
    assert read_metric(run, "model_error/accumulated") > 0.0  # the model-error callback ran MAG's rollouts
    assert (run / "plots" / "eval_won_rate.png").exists() and (run / "plots" / "model_error.png").exists()
    model = MAG.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert model.planning.horizon == 3 and model.planning.candidates == 4
    assert model.counters["env_steps"] >= 300


def test_mag_two_process_ddp_on_cpu_in_bf16_mixed(tmp_path, cli, read_metric, quiet_cli_args):
    """Two-process DDP with the trainer's bf16-mixed precision and the fast path on (its own bf16 autocast regions
    nest inside the trainer's; Adam unfused, which Lightning's mixed-precision gradient clipping needs)."""
    result = cli(
        "fit",
        "--config",
        "conf/mag_smax_2s3z.yaml",
        *TINY,
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.precision=bf16-mixed",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run(tmp_path / "outputs")
    assert read_metric(run, "eval/env_steps") >= 300  # summed over both ranks
    assert 0.0 <= read_metric(run, "eval/won_rate") <= 1.0
    assert read_metric(run, "model_error/c_1") >= 0.0  # pooled over both ranks' replay
    assert "sync_dist=True" not in result.stderr  # every metric logged once per evaluation is reduced over ranks
    assert not (tmp_path / "outputs" / "mag_smax_2s3z" / "version_1").exists()  # both ranks shared one folder
    replay = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["OnlineDataModule"]
    assert len(replay["ranks"]) == 2  # each rank's replay buffer, gathered on rank 0


@pytest.mark.parametrize("method", ["mamba", "mag", "mabl"])
def test_learns_a_convention_on_the_icg_from_imagined_play(method, tmp_path, cli, read_metric_values, quiet_cli_args):
    """conf/<method>_icg.yaml (2500 environment steps, about a minute): the sampled team's return per 10-step
    episode rises from uniform random play's 5 to a convention's 10. Only the world model's imagination trains the
    policy, so this needs the RSSM, its reward head, imagination and PPO all to work together. MAMBA and MAG run the
    first 2000 steps (nothing in the schedule depends on the budget, so these are the shipped runs' first 2000): on
    seeds 0-3 and 5-7 their last three returns by 2000 steps averaged 9.92-10.0 (MABL's 9.56-9.92: it keeps 2500)."""
    budget = [] if method == "mabl" else ["--model.init_args.online.total_env_steps=2000"]
    result = cli("fit", "--config", f"conf/{method}_icg.yaml", "--seed_everything=4", *budget, *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / f"{method}_icg" / "version_0"
    returns = read_metric_values(run, "train/episode_return")
    assert 4.0 <= returns[0] <= 6.0  # warm-up: uniform random actions agree half of the time
    assert sum(returns[-3:]) / 3 >= 9.0, returns  # the last 300 environment steps: a convention, sampled


# conf/mamba_icg.yaml at tiny sizes: one iteration after the 400-step warm-up per 100 environment steps.
TINY_ICG = [
    "--model.init_args.mamba.sequence_length=3",
    "--model.init_args.mamba.model_updates=2",
    "--model.init_args.mamba.policy_rounds=1",
    "--model.init_args.mamba.imagination_horizon=3",
    "--model.init_args.world_model.hidden=16",
    "--model.init_args.world_model.embed=16",
    "--model.init_args.world_model.deter=16",
    "--model.init_args.world_model.categoricals=4",
    "--model.init_args.world_model.classes=4",
    "--model.init_args.world_model.attention_feedforward=16",
    "--model.init_args.mappo.hidden=[16,16]",
    "--model.init_args.mappo.epochs=1",
    "--model.init_args.evaluation.episodes=2",
    "--model.init_args.evaluation.final_episodes=2",
]


def test_checkpoints_move_between_compiled_and_eager_runs(tmp_path, cli, quiet_cli_args):
    """The fast path compiles the loss functions, never the modules: a checkpoint written by a compiled run resumes
    eagerly and an eager one resumes compiled, each continuing where the other was interrupted."""
    options = [
        "--config",
        "conf/mamba_icg.yaml",
        *TINY_ICG,
        "--model.init_args.online.total_env_steps=900",
        *quiet_cli_args,
    ]
    # (compile mode, optimizer steps to stop at): 3 per iteration (2 world-model steps, 1 PPO step), 100 env steps
    # each. Eager -> compiled -> eager covers both directions with one compiled part (compiling is this test's cost).
    schedule = [("none", ["--trainer.max_steps=6"]), ("default", ["--trainer.max_steps=9"]), ("none", [])]
    checkpoint = tmp_path / "outputs" / "mamba_icg" / "version_0" / "checkpoints" / "last.ckpt"  # every part's
    env_steps: list[int] = []
    for mode, stop in schedule:
        resume = [f"--ckpt_path={checkpoint}"] if env_steps else []
        result = cli("fit", *options, f"--model.init_args.fast.compile={mode}", *stop, *resume)
        assert result.returncode == 0, result.stderr[-3000:]
        saved = torch.load(checkpoint, weights_only=True)
        counters = saved["mbmarl_counters"]
        assert counters["world_model_steps"] == 2 * counters["updates"]
        assert not any("_orig_mod" in key for key in saved["state_dict"])  # plain module names
        env_steps.append(counters["env_steps"])
    assert env_steps[0] < env_steps[1] < env_steps[2] == 900, env_steps  # each run continued the one before
