"""MASAC learner: the soft Bellman target worked by hand, the tanh log-prob correction, helpers and the losses'
gradient routing."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import AffineTransform, Independent, Normal, TanhTransform, TransformedDistribution

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.masac import (
    MASACAgents,
    MASACConfig,
    actor_loss,
    alpha_loss,
    critic_loss,
    joint_with_own,
    opponent_features,
    soft_bellman_target,
    soft_update,
)
from lightning_mbmarl.learners.squashed import TanhGaussian

CONTINUOUS = EnvSpec("c", 2, (3, 3), 4, "continuous", (2, 2), 25)
DISCRETE = EnvSpec("d", 2, (3, 3), 4, "discrete", (3, 3), 25)


class ConstantTwin(nn.Module):
    """A stand-in critic: fixed values ``[2, N, out]`` for every input row ``[..., N, in]``."""

    def __init__(self, values: list) -> None:
        super().__init__()
        self.register_buffer("values", torch.tensor(values, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        twins, n, out = self.values.shape
        return self.values.view(twins, *[1] * (x.dim() - 2), n, out).expand(twins, *x.shape[:-1], out)


class FixedSample:
    """A stand-in continuous policy whose reparameterised sample is known."""

    def __init__(self, action: torch.Tensor, log_prob: torch.Tensor) -> None:
        self.action, self.log_prob = action, log_prob

    def rsample(self):
        return self.action, self.log_prob


def _batch(spec: EnvSpec, b: int = 3) -> dict[str, torch.Tensor]:
    n, a = spec.n_agents, spec.action_dim
    action_features = (
        torch.nn.functional.one_hot(torch.randint(a, (b, n)), a).float()
        if spec.discrete
        else torch.rand(b, n, a) * 2 - 1
    )
    return {
        "obs": torch.randn(b, n, spec.obs_dim),
        "next_obs": torch.randn(b, n, spec.obs_dim),
        "state": torch.randn(b, spec.state_dim),
        "next_state": torch.randn(b, spec.state_dim),
        "avail": torch.ones(b, n, a, dtype=torch.bool),
        "next_avail": torch.ones(b, n, a, dtype=torch.bool),
        "action_features": action_features,
        "agent_rewards": torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])[:b],
        # transition 0 continues, 1 ends in an absorbing state, 2 is cut by the time limit
        "terminal": torch.tensor([0.0, 1.0, 0.0])[:b],
        "timeout": torch.tensor([0.0, 0.0, 1.0])[:b],
    }


def test_soft_bellman_target_continuous_by_hand(monkeypatch) -> None:
    config = MASACConfig(gamma=0.9, initial_alpha=0.5)
    agents = MASACAgents(CONTINUOUS, CONTINUOUS.state_dim, config)
    agents.target_critic = ConstantTwin([[[3.0], [-1.0]], [[5.0], [-2.0]]])  # twin min: agent 0 -> 3, agent 1 -> -2
    log_prob = torch.tensor([[-1.0, 2.0]]).expand(3, 2)
    monkeypatch.setattr(agents, "policy", lambda *args: FixedSample(torch.zeros(3, 2, 2), log_prob))
    target = soft_bellman_target(agents, _batch(CONTINUOUS), config)
    # soft value: agent 0: 3 - 0.5 * (-1) = 3.5; agent 1: -2 - 0.5 * 2 = -3
    bootstrap = torch.tensor([1.0 + 0.9 * 3.5, 2.0 + 0.9 * -3.0])
    expected = torch.stack([bootstrap, torch.tensor([1.0, 2.0]), bootstrap])  # the time-out still bootstraps
    torch.testing.assert_close(target, expected)


def test_soft_bellman_target_discrete_is_the_expectation_over_own_choices() -> None:
    config = MASACConfig(gamma=0.5, initial_alpha=2.0)
    agents = MASACAgents(DISCRETE, DISCRETE.state_dim, config)
    # per agent, per own choice: twin 1 and twin 2 values (min taken elementwise)
    agents.target_critic = ConstantTwin([[[1.0, 4.0, 0.0], [2.0, 2.0, 2.0]], [[3.0, 2.0, 0.0], [0.0, 5.0, 2.0]]])
    with torch.no_grad():  # the actor outputs logits 0: uniform over the available choices
        for p in agents.actor.parameters():
            p.zero_()
    batch = _batch(DISCRETE)
    batch["next_avail"][:, 0, 2] = False  # agent 0 may only pick among two choices next
    target = soft_bellman_target(agents, batch, config)
    # agent 0: p = (1/2, 1/2, 0), min Q = (1, 2, 0): 1.5 - 2 * log(1/2); agent 1: p = 1/3, min Q = (0, 2, 2)
    v0 = 0.5 * 1.0 + 0.5 * 2.0 + 2.0 * math.log(2.0)
    v1 = (0.0 + 2.0 + 2.0) / 3.0 + 2.0 * math.log(3.0)
    bootstrap = torch.tensor([1.0 + 0.5 * v0, 2.0 + 0.5 * v1])
    torch.testing.assert_close(target, torch.stack([bootstrap, torch.tensor([1.0, 2.0]), bootstrap]))


def test_critic_loss_sums_both_twins_and_agents() -> None:
    config = MASACConfig()
    agents = MASACAgents(CONTINUOUS, CONTINUOUS.state_dim, config)
    batch = _batch(CONTINUOUS)
    torch.manual_seed(0)
    target = soft_bellman_target(agents, batch, config)
    agents.critic = ConstantTwin([[[1.0], [2.0]], [[3.0], [4.0]]])
    torch.manual_seed(0)
    loss = critic_loss(agents, batch, config)["loss"]
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).unsqueeze(1)  # [2, 1, N]
    torch.testing.assert_close(loss, 0.5 * (q - target).square().mean(dim=1).sum())


def test_tanh_log_prob_matches_torch_transformed_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(400, 2, 3, generator=g), torch.rand(400, 2, 3, generator=g) * 3 - 2
    mask = torch.tensor([[True, True, True], [True, True, False]])  # agent 1 has two real dimensions
    low, high = -2.0, 4.0
    dist = TanhGaussian(mean, log_std, mask, low, high)
    action, log_prob = dist.rsample(g)
    assert action.shape == (400, 2, 3) and (action[:, 1, 2] == 0).all()
    assert (action >= low).all() and (action <= high).all()
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(1.0, 3.0)])
    safe = action.clamp(low + 1e-4, high - 1e-4)  # TanhTransform's inverse is only finite strictly inside the box
    expected = torch.where(mask, reference.log_prob(torch.where(mask, safe, 1.0)), 0.0).sum(-1)
    torch.testing.assert_close(
        dist.log_prob_of_pre_squash(torch.atanh((safe - 1.0) / 3.0)), expected, rtol=1e-4, atol=1e-3
    )
    # without padding and at moderate values the sampled log-probs agree too
    full = TanhGaussian(mean[:, :1], log_std[:, :1].clamp(max=-1.0), torch.ones(1, 3, dtype=torch.bool))
    a, lp = full.rsample(g)
    ref = Independent(
        TransformedDistribution(Normal(mean[:, :1], log_std[:, :1].clamp(max=-1.0).exp()), [TanhTransform()]), 1
    )
    inside = (a.abs() < 0.999).all(-1)
    torch.testing.assert_close(lp[inside], ref.log_prob(a)[inside], rtol=1e-4, atol=1e-3)


def test_tanh_log_prob_stays_finite_when_saturated() -> None:
    dist = TanhGaussian(torch.full((1, 1, 1), 30.0), torch.full((1, 1, 1), -5.0), torch.ones(1, 1, dtype=torch.bool))
    action, log_prob = dist.rsample()
    assert action.item() == pytest.approx(1.0) and torch.isfinite(log_prob).all()


def test_opponent_features_lists_the_others_in_agent_order() -> None:
    features = torch.arange(3 * 2, dtype=torch.float32).view(1, 3, 2)  # agent i: [2i, 2i + 1]
    expected = torch.tensor([[[2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0]]])
    torch.testing.assert_close(opponent_features(features), expected)


def test_joint_with_own_replaces_only_each_agents_own_slot() -> None:
    joint = torch.tensor([[[1.0], [2.0], [3.0]]])
    own = torch.tensor([[[10.0], [20.0], [30.0]]])
    expected = torch.tensor([[[10.0, 2.0, 3.0], [1.0, 20.0, 3.0], [1.0, 2.0, 30.0]]])
    torch.testing.assert_close(joint_with_own(joint, own), expected)


def test_soft_update_moves_targets_by_tau() -> None:
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    soft_update(target, source, 0.25)
    for old, new, s in zip(before, target.parameters(), source.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * s)


def test_losses_train_only_their_own_parameters() -> None:
    config = MASACConfig()
    for spec in (CONTINUOUS, DISCRETE):
        agents = MASACAgents(spec, spec.state_dim, config)
        batch = _batch(spec)
        critic_loss(agents, batch, config)["loss"].backward()
        assert all(p.grad is None for p in agents.actor.parameters()) and agents.log_alpha.grad is None
        assert all(p.grad is not None for p in agents.critic.parameters())
        agents.zero_grad(set_to_none=True)
        actor = actor_loss(agents, batch, config)
        actor["loss"].backward()
        assert all(p.grad is not None for p in agents.actor.parameters()) and agents.log_alpha.grad is None
        assert actor["agent_entropy"].shape == (2,)
        assert all(not p.requires_grad for p in agents.target_critic.parameters())


def test_alpha_moves_towards_the_target_entropy() -> None:
    agents = MASACAgents(DISCRETE, DISCRETE.state_dim, MASACConfig(discrete_entropy_scale=0.5))
    torch.testing.assert_close(agents.target_entropy, torch.full((2,), 0.5 * math.log(3.0)))
    alpha_loss(agents, torch.tensor([0.0, 2.0]))["loss"].backward()
    # agent 0 is below its target entropy (alpha must grow), agent 1 above (alpha must shrink)
    assert agents.log_alpha.grad[0] < 0 < agents.log_alpha.grad[1]
    assert MASACAgents(CONTINUOUS, 4, MASACConfig()).target_entropy.tolist() == [-2.0, -2.0]


def test_opponent_conditioning_reads_batch_predictions_or_batch_actions(monkeypatch) -> None:
    config = MASACConfig()
    agents = MASACAgents(DISCRETE, DISCRETE.state_dim, config, opponent_conditioning=True)
    batch = _batch(DISCRETE)
    seen = []
    original = agents.policy
    monkeypatch.setattr(agents, "policy", lambda obs, avail, opp=None: seen.append(opp) or original(obs, avail, opp))
    actor_loss(agents, batch, config)
    torch.testing.assert_close(seen[-1], opponent_features(batch["action_features"]))
    batch["opponent_action_features"] = torch.rand(3, 2, 3)
    actor_loss(agents, batch, config)
    torch.testing.assert_close(seen[-1], batch["opponent_action_features"])
    # next step: a draft pass on the step-t features, then each agent reads the others' drafted actions (one-hot)
    seen.clear()
    soft_bellman_target(agents, batch, config)
    assert len(seen) == 2 and torch.equal(seen[0], batch["opponent_action_features"])
    assert set(seen[1].unique().tolist()) <= {0.0, 1.0} and (seen[1].sum(-1) == 1).all()
    with pytest.raises(ValueError, match="opponent_action_features"):
        agents.act(batch["obs"], batch["avail"])
    assert agents.act(batch["obs"], batch["avail"], batch["opponent_action_features"], greedy=True).shape == (3, 2)
