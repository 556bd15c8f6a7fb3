"""Evaluation with greedy, sampled or uniform random actions (``evaluation.policy``): the choice reaches every action
taken, sampled and random evaluations are reproducible from their seed and leave the training's random stream, and
the latent filter of the training's episodes, where they were."""

from __future__ import annotations

import copy

import pytest
import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig
from lightning_mbmarl.algorithms.mamba import MAMBA
from lightning_mbmarl.algorithms.mappo import MAPPO
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.envs.icg import icg_spec
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.world_models.rssm import RSSMConfig

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


def test_random_evaluation_plays_uniformly_without_the_policy_and_repeats_from_its_seed(monkeypatch):
    """Uniform random play on the ICG: each step pays 1 with probability 1/2, so 400 episodes of 10 steps average a
    return of 5 (standard error sqrt(10 / 4 / 400) = 0.08)."""
    model = mappo("random")

    def refuse(*args):
        raise AssertionError("a random evaluation must not ask the policy")

    monkeypatch.setattr(model, "act", refuse)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = model.evaluate(episodes=400, seed=5, env_config=ICG)
    assert torch.equal(torch.get_rng_state(), before)
    assert abs(first["return"] - 5.0) < 0.4, first
    assert model.evaluate(episodes=400, seed=5, env_config=ICG) == first
    assert model.evaluate(episodes=400, seed=6, env_config=ICG) != first


def test_an_unknown_evaluation_policy_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"policy must be one of \('greedy', 'sampled', 'random'\), got 'mode'"):
        EvaluationConfig(policy="mode")


@pytest.mark.parametrize("policy", ["greedy", "sampled"])
def test_an_evaluation_leaves_the_filter_of_the_collection_episodes_alone(policy):
    """MAMBA's acting keeps a filtered latent per stream of episodes; an evaluation in the middle of a collection
    episode (the collection samples, as a sampled evaluation does) leaves the collection's filter where it was."""
    torch.manual_seed(0)
    spec = icg_spec()
    model = MAMBA(
        env_spec=spec,
        world_model=RSSMConfig(hidden=16, embed=8, deter=12, categoricals=3, classes=4, attention_heads=2),
        mappo=MAPPOConfig(hidden=(16,)),
        evaluation=EvaluationConfig(policy=policy),
    )
    obs, avail = torch.randn(2, 2, spec.obs_dim), torch.ones(2, 2, spec.action_dim, dtype=torch.bool)
    last = torch.zeros(2, 2, 1, spec.action_dim)
    model.act(obs, avail, (None, last, torch.zeros(2, 1, dtype=torch.bool)), greedy=False)  # 2 episodes start
    untouched = copy.deepcopy(model)
    model.evaluate(episodes=2, seed=0, env_config=ICG)  # as many copies as the collection: one shared filter would
    going_on = (None, last, torch.ones(2, 1, dtype=torch.bool))  # be taken over; the collection episodes go on
    torch.manual_seed(1)
    after = model.filtered(obs, going_on, greedy=False)
    torch.manual_seed(1)
    assert torch.equal(after.deter, untouched.filtered(obs, going_on, greedy=False).deter)
