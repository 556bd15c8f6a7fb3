"""Online MAPPO end to end: it learns the ICG convention by playing, counts environment steps, and resumes."""

import pytest
import torch

pytestmark = pytest.mark.slow


def test_online_mappo_learns_the_iterated_coordination_game(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli("fit", "--config", "conf/mappo_icg.yaml", "--seed_everything=1", *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "mappo_icg" / "version_0"
    assert read_metric(run, "eval/normalized_score") >= 0.95
    assert read_metric(run, "eval/env_steps") >= 16000
    assert read_metric(run, "train/episode_return") > 7.0  # sampled (not greedy) play agrees most of the time
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt")
    replay = checkpoint["OnlineDataModule"]  # the data module state: replay buffer and env-step count
    assert replay["ranks"][0]["env_steps"] == 16000
    assert len(replay["ranks"][0]["buffer"]["storage"]["reward"]) == 500  # 4000 transitions / 8 copies
