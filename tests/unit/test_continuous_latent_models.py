"""Continuous actions through the latent world models (MAMBA's RSSM, MABL's bi-level model, MAG's planning) and
the latent actor-critic: heads and likelihoods by hand, shapes, imagined actions inside the box, executed actions
clipped, and the option checks that name the option and the environment."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_mbmarl.algorithms.base import CapabilityError
from lightning_mbmarl.algorithms.mabl import MABL
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.latent_actor_critic import AttentionCriticConfig, LatentActorCritic
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.learners.policies import GaussianPolicy
from lightning_mbmarl.rollouts.planning import LookAhead
from lightning_mbmarl.world_models.action_format import DECODER_MIN_STD, ActionFormat
from lightning_mbmarl.world_models.bilevel_losses import bilevel_world_model_loss
from lightning_mbmarl.world_models.bilevel_rssm import BiLevelConfig, BiLevelWorldModel
from lightning_mbmarl.world_models.imagination import imagine
from lightning_mbmarl.world_models.model_reward import ModelRewardConfig, ModelRewardPredictor
from lightning_mbmarl.world_models.rssm import RSSMConfig, RSSMState, RSSMWorldModel, sample_classes
from lightning_mbmarl.world_models.rssm_losses import TERMS, world_model_loss

# Two agents with 2 and 1 action dimensions (the second agent's second dimension is padding).
SPEC = EnvSpec(
    name="box2",
    n_agents=2,
    obs_dims=(3, 4),
    state_dim=6,
    action_kind="continuous",
    action_sizes=(2, 1),
    episode_limit=10,
)
N, O, A = SPEC.n_agents, SPEC.obs_dim, SPEC.action_dim
TINY = dict(hidden=16, embed=16, deter=16, categoricals=4, classes=4, head_layers=1)


def choice_spec(choices: int) -> EnvSpec:
    """Two agents with ``choices`` discrete actions each."""
    return EnvSpec("choices", 2, (3, 3), 6, "discrete", (choices, choices), 10)


def rssm() -> RSSMWorldModel:
    return RSSMWorldModel(SPEC, RSSMConfig(**TINY, attention_layers=1, attention_heads=2, attention_feedforward=16))


def windows(B: int = 3, L: int = 5, scale: float = 2.0) -> dict[str, torch.Tensor]:
    """Replay windows ``[B, L, ...]`` with continuous actions partly outside the box (``scale`` > 1)."""
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(B, L + 1, N, O, generator=g) * torch.as_tensor(SPEC.observation_mask())
    action = (torch.rand(B, L, N, A, generator=g) * 2 - 1) * scale * torch.as_tensor(SPEC.action_mask())
    state = torch.randn(B, L + 1, SPEC.state_dim, generator=g)
    is_first = torch.zeros(B, L, dtype=torch.bool)
    is_first[:, 0] = True
    avail = torch.as_tensor(SPEC.action_mask()).expand(B, L + 1, N, A)
    return {
        "obs": obs[:, :-1],
        "next_obs": obs[:, 1:],
        "state": state[:, :-1],
        "next_state": state[:, 1:],
        "action": action,
        "reward": torch.randn(B, L, generator=g),
        "agent_rewards": torch.randn(B, L, N, generator=g),
        "terminated": torch.zeros(B, L),
        "is_first": is_first,
        "avail": avail[:, :-1],
        "next_avail": avail[:, 1:],
    }


def test_action_inputs_are_clipped_to_the_box_and_choices_one_hot():
    box = ActionFormat(SPEC)
    assert box.decoder_width == 2 * A
    assert torch.equal(box.inputs(torch.tensor([[1.5, -0.3], [-2.0, 0.0]])), torch.tensor([[1.0, -0.3], [-1.0, 0.0]]))
    choices = ActionFormat(choice_spec(3))
    assert choices.decoder_width == 3
    assert torch.equal(choices.inputs(torch.tensor([2, 0])), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))


def test_gaussian_action_decoder_likelihood_by_hand():
    """Mean 0.5 and std 0.5 on agent 0's two dimensions; the action (1.5, 0.5) is read clipped, (1.0, 0.5):
    z = (1, 0), so NLL = 0.5 * (1 + 0) + 2 * (log 0.5 + 0.5 log 2 pi). Agent 1's padded dimension never counts."""
    raw = math.log(math.expm1(0.5 - DECODER_MIN_STD))  # softplus(raw) + min std = 0.5
    outputs = torch.tensor([[[0.5, 0.5, raw, raw], [0.0, 9.0, raw, raw]]])  # [1, N, 2A]
    actions = torch.tensor([[[1.5, 0.5], [0.5, 7.0]]])
    nll = ActionFormat(SPEC).decoder_nll(outputs, actions, torch.as_tensor(SPEC.action_mask()))
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    assert nll[0, 0].item() == pytest.approx(0.5 + 2 * (math.log(0.5) + half_log_2pi), abs=1e-5)
    assert nll[0, 1].item() == pytest.approx(0.5 * 1.0 + math.log(0.5) + half_log_2pi, abs=1e-5)  # z = 1 on dim 0


@pytest.mark.parametrize("model_kind", ["rssm", "bilevel"])
def test_the_world_models_learn_continuous_actions_without_an_avail_head(model_kind):
    if model_kind == "rssm":
        model, loss_fn = rssm(), world_model_loss
    else:
        model, loss_fn = BiLevelWorldModel(SPEC, BiLevelConfig(**TINY)), bilevel_world_model_loss
    assert model.avail_head is None and model.action_head[-1].out_features == 2 * A
    losses = loss_fn(model, windows())
    assert torch.isfinite(losses["loss"]) and losses["avail"].item() == 0.0 and losses["info"].item() != 0.0
    losses["loss"].backward()
    trained = [name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert any(name.startswith("action_head") for name in trained)
    features = torch.randn(7, N, model.feature_dim)
    assert torch.equal(model.predict_avail(features), torch.as_tensor(SPEC.action_mask()).expand(7, N, A))
    if model_kind == "rssm":
        assert set(TERMS) <= set(losses)


def test_imagined_actions_enter_the_model_inside_the_box():
    """The policy's samples stay as sampled in the rollout (PPO needs their log-probs); the transition reads them
    clipped. A wide policy (std 3) samples far outside [-1, 1]."""
    model = rssm().eval()
    seen: list[torch.Tensor] = []
    transition = model.transition

    def recording(state, actions):
        seen.append(actions)
        return transition(state, actions)

    model.transition = recording

    def wide_policy(features, avail):
        actions = 3.0 * torch.randn(*features.shape[:-1], A) * torch.as_tensor(SPEC.action_mask())
        return actions, torch.zeros(features.shape[:-1])

    with torch.no_grad():
        rollout = imagine(model, wide_policy, model.reset_prior((8,)), horizon=4)
    assert rollout["actions"].shape == (4, 8, N, A) and rollout["actions"].abs().max() > 1.0
    inputs = torch.stack(seen)
    assert inputs.abs().max() <= 1.0
    assert torch.equal(inputs, rollout["actions"].clamp(-1.0, 1.0))


def test_gaussian_latent_policy_shapes_and_its_one_hot_path():
    model = rssm()
    config = MAPPOConfig(hidden=(16, 16), share_parameters=True)
    actor_critic = LatentActorCritic(SPEC, model.layout, config, AttentionCriticConfig(attention_heads=2))
    assert isinstance(actor_critic.policy, GaussianPolicy)
    features = model.reset_prior((5,)).features
    dense = actor_critic.policy.distribution(actor_critic.policy.net(features))
    gathered = actor_critic.distribution(features, model.predict_avail(features))
    torch.testing.assert_close(gathered.mean, dense.mean, rtol=1e-5, atol=1e-5)
    actions, log_probs = actor_critic.act(features, model.predict_avail(features))
    assert actions.shape == (5, N, A) and log_probs.shape == (5, N)
    assert torch.all(actions[..., 1, 1] == 0.0)  # padding


def test_mag_look_ahead_steps_continuous_actions_as_the_model_does():
    """The look-ahead takes continuous actions as the dense columns of the transition input: the same next deter as
    the model's own transition (float32, up to summation order)."""
    model = rssm().eval()
    policy = GaussianPolicy(SPEC, model.feature_dim, (16,))
    look = LookAhead(model, ModelRewardPredictor(model.feature_dim, ModelRewardConfig(hidden=8, layers=1)), policy)
    with torch.no_grad():
        state = model.imagine_step(model.reset_prior((6,)), torch.zeros(6, N, A))
        classes = state.logits.argmax(dim=-1)
        actions = 2.0 * torch.randn(6, N, A)
        deter, _ = look.step(state.deter, classes, actions)
        assert look.act(state.deter, classes).shape == (6, N, A)
        as_sampled = RSSMState(state.deter, F.one_hot(classes, model.config.classes).float().flatten(-2), state.logits)
        expected = model.transition(as_sampled, model.actions.inputs(actions))
    torch.testing.assert_close(deter, expected, rtol=1e-5, atol=1e-5)
    assert sample_classes(state.logits).shape == (6, N, model.config.categoricals)


def test_acting_returns_actions_inside_the_box():
    method = MABL(env_spec=SPEC, world_model=BiLevelConfig(**TINY), mappo=MAPPOConfig(hidden=(16, 16)))
    method.actor_critic.policy.min_std = 5.0  # samples far outside [-1, 1]
    obs = torch.randn(4, N, O)
    history = (None, torch.zeros(4, N, 1, A), torch.zeros(4, 1, dtype=torch.bool))
    actions = method.act(obs, torch.ones(4, N, A, dtype=torch.bool), history, greedy=False)
    assert actions.shape == (4, N, A) and actions.abs().max() <= 1.0 and actions.abs().max() > 0.9


def test_discrete_only_options_on_a_continuous_environment_fail_naming_both():
    with pytest.raises(CapabilityError, match=r"world_model\.avail_scale.*discrete.*'box2' has continuous"):
        MABL(env_spec=SPEC, world_model=BiLevelConfig(**TINY, avail_scale=2.0))


def test_continuous_only_options_on_a_discrete_environment_fail_naming_both():
    from lightning_mbmarl.envs.icg import icg_spec

    with pytest.raises(CapabilityError, match=r"mappo\.min_std.*continuous.*has discrete"):
        MABL(env_spec=icg_spec(), world_model=BiLevelConfig(**TINY), mappo=MAPPOConfig(hidden=(16, 16), min_std=0.1))


def test_discrete_imagination_is_unchanged_by_the_action_format():
    """Discrete choices still enter as one-hots (the path every recorded MAMBA/MAG/MABL result used)."""
    fmt = ActionFormat(choice_spec(5))
    choices = torch.tensor([[0, 4], [3, 1]])
    assert torch.equal(fmt.inputs(choices), F.one_hot(choices, 5).float())
