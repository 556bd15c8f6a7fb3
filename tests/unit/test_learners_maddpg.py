"""MADDPG learner: the TD target worked by hand, straight-through Gumbel-softmax, exploration and gradient routing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.maddpg import (
    MADDPGAgents,
    MADDPGConfig,
    actor_loss,
    critic_loss,
    gumbel_softmax_st,
    td_target,
)

CONTINUOUS = EnvSpec("c", 2, (3, 3), 4, "continuous", (2, 1), 25)  # agent 1 has one real dimension of two
DISCRETE = EnvSpec("d", 2, (3, 3), 4, "discrete", (3, 3), 25)


class RecordingCritic(nn.Module):
    """A stand-in critic returning ``sum of its action inputs + per-agent offset`` and keeping its last input."""

    def __init__(self, state_dim: int, offsets: list[float]) -> None:
        super().__init__()
        self.state_dim, self.offsets, self.last_input = state_dim, torch.tensor(offsets), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_input = x
        return (x[..., self.state_dim :].sum(-1) + self.offsets).unsqueeze(-1)


def _batch(spec: EnvSpec, b: int = 3) -> dict[str, torch.Tensor]:
    n, a = spec.n_agents, spec.action_dim
    action_features = F.one_hot(torch.randint(a, (b, n)), a).float() if spec.discrete else torch.rand(b, n, a) * 2 - 1
    return {
        "obs": torch.randn(b, n, spec.obs_dim),
        "next_obs": torch.randn(b, n, spec.obs_dim),
        "state": torch.randn(b, spec.state_dim),
        "next_state": torch.randn(b, spec.state_dim),
        "avail": torch.ones(b, n, a, dtype=torch.bool),
        "next_avail": torch.ones(b, n, a, dtype=torch.bool),
        "action_features": action_features,
        "agent_rewards": torch.tensor([[1.0, -1.0]]).expand(b, n),
        "terminal": torch.tensor([0.0, 1.0, 0.0])[:b],
        "timeout": torch.tensor([0.0, 0.0, 1.0])[:b],
    }


def test_td_target_uses_target_actors_and_masks_only_terminals() -> None:
    config = MADDPGConfig(gamma=0.5)
    agents = MADDPGAgents(CONTINUOUS, CONTINUOUS.state_dim, config)
    agents.target_critic = RecordingCritic(CONTINUOUS.state_dim, [10.0, 20.0])
    batch = _batch(CONTINUOUS)
    target = td_target(agents, batch, config)
    # The target actors' squashed outputs on the next observations, padding zeroed, are what the critic reads.
    mask = torch.as_tensor(CONTINUOUS.action_mask())
    next_action = torch.where(mask, torch.tanh(agents.target_actor(batch["next_obs"])), 0.0)
    seen = agents.target_critic.last_input
    torch.testing.assert_close(seen[..., :4], batch["next_state"].unsqueeze(1).expand(3, 2, 4))
    torch.testing.assert_close(seen[:, 0, 4:], next_action.flatten(-2))
    torch.testing.assert_close(seen[:, 1, 4:], next_action.flatten(-2))
    q_next = next_action.flatten(-2).sum(-1, keepdim=True) + torch.tensor([10.0, 20.0])  # [B, N]
    expected = torch.tensor([1.0, -1.0]) + 0.5 * q_next
    expected[1] = torch.tensor([1.0, -1.0])  # absorbing: no bootstrap; the time-out (row 2) bootstraps
    torch.testing.assert_close(target, expected)
    assert critic_loss(agents, batch, config)["loss"].shape == ()


def test_discrete_target_actions_are_one_hot_argmax_of_available_choices() -> None:
    config = MADDPGConfig(gamma=1.0)
    agents = MADDPGAgents(DISCRETE, DISCRETE.state_dim, config)
    agents.target_critic = RecordingCritic(DISCRETE.state_dim, [0.0, 0.0])
    batch = _batch(DISCRETE)
    batch["next_avail"][:, 0] = torch.tensor([False, True, False])  # agent 0 can only pick choice 1
    td_target(agents, batch, config)
    next_joint = agents.target_critic.last_input[:, 0, 4:].view(3, 2, 3)
    assert torch.equal(next_joint[:, 0], F.one_hot(torch.ones(3, dtype=torch.long), 3).float())
    logits = agents.target_actor(batch["next_obs"])[:, 1]
    assert torch.equal(next_joint[:, 1], F.one_hot(logits.argmax(-1), 3).float())


def test_gumbel_softmax_straight_through() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0, 3.0]]).repeat(20_000, 1).requires_grad_(True)
    avail = torch.tensor([True, True, True, False]).expand(20_000, 4)
    torch.manual_seed(0)
    hard = gumbel_softmax_st(logits, avail, temperature=0.7)
    # forward: one-hot vectors of available choices, drawn with the softmax probabilities of the available logits
    assert torch.equal(hard.sum(-1), torch.ones(20_000)) and set(hard.unique().tolist()) == {0.0, 1.0}
    assert (hard[:, 3] == 0).all()
    torch.testing.assert_close(hard.mean(0)[:3], torch.softmax(logits[0, :3].detach(), -1), atol=0.015, rtol=0.0)
    # backward: exactly the gradient of the relaxed sample drawn with the same noise
    weights = torch.randn(4)
    (hard * weights).sum().backward()
    straight_through = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(0)
    masked = torch.where(avail, logits, -1e9).log_softmax(-1)
    soft = F.gumbel_softmax(masked, tau=0.7, hard=False)
    (soft * weights).sum().backward()
    torch.testing.assert_close(straight_through, logits.grad)
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))


def test_actor_loss_trains_only_actors_and_includes_the_l2_term() -> None:
    for spec in (CONTINUOUS, DISCRETE):
        config = MADDPGConfig(action_l2=0.1)
        agents = MADDPGAgents(spec, spec.state_dim, config)
        batch = _batch(spec)
        out = actor_loss(agents, batch, config)
        out["loss"].backward()
        assert all(p.grad is not None for p in agents.actor.parameters())
        assert all(p.grad is None for p in agents.target_actor.parameters())
        assert out["pre_activation_l2"] > 0
        agents.zero_grad(set_to_none=True)
        critic_loss(agents, batch, config)["loss"].backward()
        assert all(p.grad is None for p in agents.actor.parameters())


def test_continuous_actor_gradient_follows_the_critic() -> None:
    """With a critic that rewards agent 0's action, the policy gradient pushes agent 0's tanh input upwards."""
    config = MADDPGConfig(action_l2=0.0)
    agents = MADDPGAgents(CONTINUOUS, CONTINUOUS.state_dim, config)
    agents.critic = RecordingCritic(CONTINUOUS.state_dim, [0.0, 0.0])
    batch = _batch(CONTINUOUS)
    bias = agents.actor.net.output_layer.bias  # [N, 1, A]
    actor_loss(agents, batch, config)["loss"].backward()
    assert (bias.grad[0, 0] < 0).all()  # d(-Q)/d(bias) < 0: increasing the action raises Q
    assert bias.grad[1, 0, 1] == 0  # agent 1's padded dimension gets no gradient


def test_exploration_stays_in_the_box_and_greedy_is_deterministic() -> None:
    agents = MADDPGAgents(CONTINUOUS, CONTINUOUS.state_dim, MADDPGConfig(exploration_noise=2.0))
    obs = torch.randn(500, 2, 3)
    noisy = agents.act(obs)
    assert noisy.abs().max() <= 1.0 and (noisy[:, 1, 1] == 0).all() and noisy.std() > 0.5
    assert torch.equal(agents.act(obs, greedy=True), agents.act(obs, greedy=True))
    discrete = MADDPGAgents(DISCRETE, DISCRETE.state_dim, MADDPGConfig())
    avail = torch.tensor([True, False, True]).expand(500, 2, 3)
    assert (discrete.act(obs, avail) != 1).all() and (discrete.act(obs, avail, greedy=True) != 1).all()


def test_conditioned_actors_need_opponent_features() -> None:
    agents = MADDPGAgents(DISCRETE, DISCRETE.state_dim, MADDPGConfig(), opponent_conditioning=True)
    batch = _batch(DISCRETE)
    with pytest.raises(ValueError, match="opponent_action_features"):
        agents.act(batch["obs"], batch["avail"])
    assert agents.act(batch["obs"], batch["avail"], torch.zeros(3, 2, 3)).shape == (3, 2)
    assert torch.isfinite(critic_loss(agents, batch, MADDPGConfig())["loss"])
    assert torch.isfinite(actor_loss(agents, batch, MADDPGConfig())["loss"])
