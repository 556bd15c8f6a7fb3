"""MOMA-PPO end to end through the command line on offline MaMuJoCo Ant 4x2 under partial observability
(``conf/moma_ant_po.yaml``, shrunk to the CI budget): the random dataset is made on the spot, the world model
learns it, the policy trains on model rollouts with the memory module, and the greedy team is scored against the
measured reference returns."""

import csv
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("gymnasium_robotics", reason="MaMuJoCo needs the mamujoco extra: pip install -e '.[mamujoco]'")

from lightning_mbmarl.data.hdf5_format import read_dataset  # noqa: E402

pytestmark = pytest.mark.slow

ANT_PO_SHORT_EPISODES = {"scenario": "Ant", "agent_conf": "4x2", "observation": "partial", "episode_length": 40}


def test_moma_ppo_runs_on_ant_po_and_logs_the_normalized_score(tmp_path, cli, read_metric, quiet_cli_args):
    dataset = tmp_path / "ant_partial_random.hdf5"
    recipe = {"kind": "mamujoco", "policy": "random", "episodes": 40, "seed": 0}
    result = cli(
        "fit",
        "--config",
        "conf/moma_ant_po.yaml",
        f"--data.init_args.env.kwargs={json.dumps(ANT_PO_SHORT_EPISODES)}",
        f"--data.init_args.datasets={json.dumps({'random': {'path': str(dataset), 'make_if_missing': recipe}})}",
        "--model.init_args.world_model.hidden=[64, 64]",
        "--model.init_args.moma.world_model_steps=300",
        "--model.init_args.moma.world_model_log_interval=50",
        "--model.init_args.moma.policy_iterations=3",
        "--model.init_args.moma.rollout_starts=32",
        "--model.init_args.mappo.minibatch_size=64",
        "--model.init_args.mappo.hidden=[32, 32]",
        "--model.init_args.mappo.memory_dim=16",
        "--model.init_args.evaluation.episodes=2",
        "--model.init_args.evaluation.final_episodes=4",
        "--trainer.val_check_interval=100",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "moma_ant_po" / "version_0"

    data = read_dataset(dataset)
    assert data.metadata["partition"]["observation"] == "partial" and data.spec.n_agents == 4
    assert read_metric(run, "counters/policy_iterations") == 3
    assert math.isfinite(read_metric(run, "eval/normalized_score"))
    errors = [float(r["world_model/held_out_error"]) for r in _rows(run) if r.get("world_model/held_out_error")]
    assert len(errors) >= 3 and errors[-1] < errors[0]  # the world model learned the random dataset
    assert (run / "checkpoints" / "last.ckpt").exists()


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run / "metrics.csv")))
