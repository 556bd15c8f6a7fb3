"""The latent-model methods on continuous-action environments, end to end through the command line for two
iterations: a pipeline check (world model, imagination, PPO and greedy evaluation with a Gaussian policy). Whether
they learn is the benchmarks' business (issue 19's Humanoid table), not a test's."""

import math

import pytest

pytestmark = pytest.mark.slow

SHORT = [
    "--model.init_args.online.warmup_env_steps=100",
    "--model.init_args.online.total_env_steps=300",
    "--model.init_args.online.batch_size=2",
    "--model.init_args.mamba.model_updates=2",
    "--model.init_args.mamba.policy_rounds=1",
    "--model.init_args.mappo.epochs=1",
    "--model.init_args.evaluation.episodes=1",
    "--model.init_args.evaluation.final_episodes=1",
    "--trainer.val_check_interval=1",
    "--trainer.callbacks.init_args.trajectories=2",
]


def check_run(run, read_metric) -> None:
    assert read_metric(run, "counters/updates") >= 2
    for metric in ("world_model/info", "world_model/loss", "mappo/imagined_return", "eval/return"):
        assert math.isfinite(read_metric(run, metric)), metric
    assert read_metric(run, "world_model/avail") == 0.0  # no availability head for a continuous space


@pytest.mark.parametrize("method", ["mabl", "mag"])
def test_on_two_agent_mpe_spread(method, tmp_path, cli, read_metric, quiet_cli_args):
    pytest.importorskip("mpe2", reason="MPE needs the mpe extra: pip install -e '.[mpe]'")
    overrides = ["--model.class_path=lightning_mbmarl.algorithms.mag.MAG"] if method == "mag" else []
    steps = "--model.init_args.online.total_env_steps=500"  # 200 steps an iteration here
    result = cli("fit", "--config", "conf/mabl_mpe_spread_2.yaml", *overrides, *SHORT, steps, *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    check_run(tmp_path / "outputs" / "mabl_mpe_spread_2" / "version_0", read_metric)


def test_mabl_humanoid_config(tmp_path, cli, read_metric, quiet_cli_args):
    pytest.importorskip("gymnasium_robotics", reason="MaMuJoCo needs the mamujoco extra: pip install -e '.[mamujoco]'")
    result = cli("fit", "--config", "conf/mabl_mamujoco_humanoid.yaml", *SHORT, *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    check_run(tmp_path / "outputs" / "mabl_mamujoco_humanoid" / "version_0", read_metric)


def test_a_discrete_only_option_on_a_continuous_environment_is_one_clear_error(tmp_path, cli, quiet_cli_args):
    pytest.importorskip("mpe2", reason="MPE needs the mpe extra: pip install -e '.[mpe]'")
    result = cli(
        "fit", "--config", "conf/mabl_mpe_spread_2.yaml", "--model.init_args.world_model.avail_scale=2", *quiet_cli_args
    )
    assert result.returncode == 2
    assert "world_model.avail_scale=2.0 applies to discrete actions only" in result.stderr
    assert "'mpe_spread" in result.stderr and "Traceback" not in result.stderr
