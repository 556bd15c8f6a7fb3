"""The SMAX CPU protocol's configs (benchmarks/README.md, "SMAX on a CPU"), each run end to end for two iterations
at its own sizes: a pipeline check (the learning evidence is the mag_smax_cpu sweep's results, not a test).
Warm-up, replay windows per batch, update counts, policy rounds, PPO epochs and evaluations are cut to keep the suite
fast; network sizes and everything else are the config's."""

import pytest

pytest.importorskip("jaxmarl", reason="SMAX needs the smax extra: pip install -e '.[smax]'")
pytestmark = pytest.mark.slow

SHORT = {
    "latent": [
        "--model.init_args.online.warmup_env_steps=100",
        "--model.init_args.online.total_env_steps=200",
        "--model.init_args.online.batch_size=2",
        "--model.init_args.mamba.model_updates=2",
        "--model.init_args.mamba.policy_rounds=1",
        "--model.init_args.mappo.epochs=1",
        "--model.init_args.evaluation.episodes=2",
        "--model.init_args.evaluation.final_episodes=2",
        "--trainer.val_check_interval=2",
        "--trainer.callbacks.init_args.trajectories=4",
    ],
    "mappo": [
        "--model.init_args.online.total_env_steps=1600",
        "--model.init_args.mappo.epochs=1",
        "--model.init_args.evaluation.episodes=2",
        "--model.init_args.evaluation.final_episodes=2",
        "--trainer.val_check_interval=20",
    ],
}


@pytest.mark.parametrize("map_name", ["3m", "2s3z"])
@pytest.mark.parametrize("method", ["mamba", "mag", "mappo"])
def test_cpu_protocol_config_runs_two_iterations(method, map_name, tmp_path, cli, read_metric, quiet_cli_args):
    config = f"conf/{method}_smax_{map_name}_cpu.yaml"
    result = cli("fit", "--config", config, *SHORT["mappo" if method == "mappo" else "latent"], *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / f"{method}_smax_{map_name}_cpu" / "version_0"
    assert read_metric(run, "counters/updates" if method != "mappo" else "counters/rounds") >= 2
    assert 0.0 <= read_metric(run, "eval/won_rate") <= 1.0
