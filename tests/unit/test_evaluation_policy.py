"""Evaluation with greedy or sampled actions (``evaluation.policy``): the choice reaches every action taken, sampled
evaluations are reproducible from their seed and leave the training's random stream where it was."""

from __future__ import annotations

import pytest
import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig
from lightning_mbmarl.algorithms.mappo import MAPPO
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.envs.icg import icg_spec
from lightning_mbmarl.learners.mappo import MAPPOConfig

ICG = EnvConfig("icg", {"episode_length": 10})


def mappo(policy: str) -> MAPPO:
    torch.manual_seed(0)
    return MAPPO(icg_spec(), mappo=MAPPOConfig(hidden=(8,)), evaluation=EvaluationConfig(policy=policy))


@pytest.mark.parametrize("policy", ["greedy", "sampled"])
def test_every_evaluation_action_is_chosen_as_the_policy_option_says(policy, monkeypatch):
    model = mappo(policy)
    asked: list[bool] = []
    act = model.act

    def spy(obs, avail, history, greedy):
        asked.append(greedy)
        return act(obs, avail, history, greedy)

    monkeypatch.setattr(model, "act", spy)
    model.evaluate(episodes=3, seed=0, env_config=ICG)
    assert len(asked) == 10 and set(asked) == {policy == "greedy"}


def test_sampled_evaluation_repeats_from_its_seed_and_leaves_the_training_stream_alone():
    model = mappo("sampled")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = model.evaluate(episodes=20, seed=5, env_config=ICG)
    assert torch.equal(torch.get_rng_state(), before)
    assert model.evaluate(episodes=20, seed=5, env_config=ICG) == first
    # an untrained policy is near uniform: its sampled play differs from one seed to the next
    assert any(model.evaluate(episodes=20, seed=s, env_config=ICG) != first for s in (6, 7, 8))


def test_an_unknown_evaluation_policy_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"policy must be one of \('greedy', 'sampled'\), got 'mode'"):
        EvaluationConfig(policy="mode")
