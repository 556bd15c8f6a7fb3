"""The Flatland CPU protocol's configs (benchmarks/README.md, "Flatland on a CPU"), each run end to end for two
iterations at its own network sizes: a pipeline check (the learning evidence is the mabl_flatland sweep's results,
not a test). Warm-up, replay windows, update counts, policy rounds, PPO epochs and evaluations are cut to keep the
suite fast."""

import pytest

pytest.importorskip(
    "flatland.envs.rail_env",
    reason="Flatland needs the flatland extra: pip install -e '.[flatland]' "
    "&& pip install --no-deps flatland-rl==4.3.0",
)
pytestmark = pytest.mark.slow

SHORT = [
    "--model.init_args.online.warmup_env_steps=100",
    "--model.init_args.online.total_env_steps=200",
    "--model.init_args.online.batch_size=2",
    "--model.init_args.mamba.model_updates=2",
    "--model.init_args.mamba.policy_rounds=1",
    "--model.init_args.mappo.epochs=1",
    "--model.init_args.evaluation.episodes=1",
    "--model.init_args.evaluation.final_episodes=1",
    "--trainer.val_check_interval=2",
    "--trainer.callbacks.init_args.trajectories=4",
    '--data.init_args.env.kwargs={"episode_limit": 60}',
]


def test_mabl_cpu_protocol_config_runs_two_iterations(tmp_path, cli, read_metric, quiet_cli_args):
    """MABL's CPU config (MABL-SG and DreamerV2 are it with another global_mode; MAMBA's has the SMAX CPU sizes that
    tests/e2e/test_smax_cpu_protocol.py runs)."""
    result = cli("fit", "--config", "conf/mabl_flatland_5_cpu.yaml", *SHORT, *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "mabl_flatland_5_cpu" / "version_0"
    assert read_metric(run, "counters/updates") >= 2
    assert 0.0 <= read_metric(run, "eval/arrived") <= 1.0
