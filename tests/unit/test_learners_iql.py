"""MAIQL learner: the expectile loss (Eq. 1) and the decomposed AWR weight (Eq. 7) worked by hand, terminal vs
timeout masking (Eq. 2), dataset log-probabilities of squashed actions, gradient routing, and a tiny task where
the advantage weights pick the coordinated joint action over the behaviour policy's."""

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.iql import (
    Decomposition,
    MAIQLAgents,
    MAIQLConfig,
    actor_loss,
    awr_weights,
    dataset_log_prob,
    expectile_loss,
    q_loss,
    value_loss,
)
from lightning_mbmarl.learners.masac import soft_update

DISCRETE = EnvSpec("d", 2, (3, 3), 4, "discrete", (2, 2), 10)
CONTINUOUS = EnvSpec("c", 2, (3, 2), 4, "continuous", (1, 2), 10)
SMALL = MAIQLConfig(hidden=(16, 16))


def _batch(spec: EnvSpec, b: int = 4) -> dict[str, torch.Tensor]:
    n, a = spec.n_agents, spec.action_dim
    if spec.discrete:
        action = torch.randint(a, (b, n))
        features = F.one_hot(action, a).float()
    else:
        action = features = (torch.rand(b, n, a) * 2 - 1) * torch.as_tensor(spec.action_mask())
    return {
        "obs": torch.randn(b, n, spec.obs_dim),
        "next_obs": torch.randn(b, n, spec.obs_dim),
        "state": torch.randn(b, spec.state_dim),
        "next_state": torch.randn(b, spec.state_dim),
        "action": action,
        "action_features": features,
        "avail": torch.ones(b, n, a, dtype=torch.bool),
        "reward": torch.arange(b, dtype=torch.float32),
        "terminal": torch.zeros(b),
        "timeout": torch.zeros(b),
    }


def test_expectile_loss_by_hand():
    # e = 0.7: positive errors weigh 0.7, negative ones 0.3 -> (0.7 * 2^2 + 0.3 * 1^2 + 0.7 * 0) / 3
    diff = torch.tensor([2.0, -1.0, 0.0])
    assert expectile_loss(diff, 0.7).item() == pytest.approx((2.8 + 0.3) / 3)
    assert expectile_loss(diff, 0.5).item() == pytest.approx(0.5 * diff.square().mean().item())  # SARSA / 2


def test_awr_weight_by_hand():
    # Decomposition(utilities [B, N], mixing weights [B, N], bias [B])
    q = Decomposition(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 1.0]]), torch.tensor([0.3]))
    v = Decomposition(torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, 0.5]]), torch.tensor([0.1]))
    # agent 1: 0.5 * 1 - 1 * 0.5 = 0; agent 2: 1 * 2 - 0.5 * 1 = 1.5; B(s) = exp(0.3 - 0.1), not tempered by beta
    expected = math.exp(0.2) * math.exp(3 * 0.0) * math.exp(3 * 1.5)  # = exp(4.7) ~ 110
    assert awr_weights(q, v, temperature=3.0, max_weight=1000.0).item() == pytest.approx(expected, rel=1e-5)
    assert awr_weights(q, v, temperature=3.0, max_weight=100.0).item() == pytest.approx(100.0)  # clipped
    assert awr_weights(q, v, temperature=1.0, max_weight=1e9).item() == pytest.approx(
        math.exp(q.total.item() - v.total.item()), rel=1e-5
    )  # beta = 1: Eq. 3 on the mixed values


def test_huge_advantages_give_the_clip_not_inf():
    q = Decomposition(torch.tensor([[1e4, 1e4]]), torch.ones(1, 2), torch.zeros(1))
    v = Decomposition(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1))
    assert awr_weights(q, v, 3.0, 100.0).item() == pytest.approx(100.0)


def test_value_loss_regresses_v_on_the_target_mixed_q():
    torch.manual_seed(0)
    agents, batch = MAIQLAgents(DISCRETE, SMALL), _batch(DISCRETE)
    loss = value_loss(agents, batch, SMALL)
    target_q = agents.target_critic(batch["obs"], batch["state"], batch["action_features"])
    v = agents.value(batch["obs"], batch["state"])
    expected = expectile_loss(target_q.total - v.total, SMALL.expectile)
    torch.testing.assert_close(loss["loss"], expected)
    # By hand: the mixed Q is sum_i w_i Q_i(o_i, a_i) + b with Q_i picked at the taken choice.
    weights, bias = agents.target_critic.mixer.mixing(batch["state"])
    per_choice = agents.target_critic.utilities(batch["obs"])
    picked = per_choice.gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(target_q.total, (weights * picked).sum(-1) + bias)
    loss["loss"].backward()
    assert all(p.grad is None for p in agents.critic.parameters())
    assert all(p.grad is None for p in agents.actor.parameters())


def test_terminal_cuts_the_q_target_and_timeout_bootstraps():
    torch.manual_seed(0)
    config = MAIQLConfig(hidden=(16, 16), gamma=0.9)
    agents, batch = MAIQLAgents(CONTINUOUS, config), _batch(CONTINUOUS, 3)
    batch["terminal"] = torch.tensor([1.0, 0.0, 0.0])
    batch["timeout"] = torch.tensor([0.0, 1.0, 0.0])
    loss = q_loss(agents, batch, config)
    next_v = agents.value(batch["next_obs"], batch["next_state"]).total.detach()
    target = batch["reward"] + 0.9 * torch.tensor([0.0, 1.0, 1.0]) * next_v
    q = agents.critic(batch["obs"], batch["state"], batch["action_features"]).total
    torch.testing.assert_close(loss["loss"], (q - target).square().mean())
    loss["loss"].backward()
    assert all(p.grad is None for p in agents.value.parameters())


@pytest.mark.parametrize("spec", [DISCRETE, CONTINUOUS], ids=["discrete", "continuous"])
def test_actor_loss_trains_only_the_actors(spec):
    torch.manual_seed(0)
    agents, batch = MAIQLAgents(spec, SMALL), _batch(spec)
    loss = actor_loss(agents, batch, SMALL)
    assert torch.isfinite(loss["loss"])
    loss["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agents.actor.parameters())
    assert all(p.grad is None for p in [*agents.critic.parameters(), *agents.value.parameters()])


def test_dataset_log_prob_inverts_the_tanh_squashing():
    torch.manual_seed(0)
    agents = MAIQLAgents(CONTINUOUS, SMALL)
    dist = agents.policy(torch.randn(64, 2, 3))
    action, log_prob = dist.rsample()
    torch.testing.assert_close(dataset_log_prob(dist, action), log_prob, atol=2e-3, rtol=1e-4)
    at_bounds = torch.ones(64, 2, 2) * torch.as_tensor(CONTINUOUS.action_mask())
    assert torch.isfinite(dataset_log_prob(dist, at_bounds)).all()  # actions on the box's edge stay finite


def test_advantage_weights_pick_the_coordinated_action_over_the_behaviour_policy():
    """One-step team game: reward 10 only when both agents pick choice 1; the data mostly shows choice 0 (p = 0.8).
    Behaviour cloning would pick 0; MAIQL's greedy team picks (1, 1). (With reward 1 the advantage of choice 1 is
    too small for beta = 3 to outweigh the behaviour policy's 4:1 odds: AWR stays close to the data.)"""
    torch.manual_seed(0)
    spec = EnvSpec("bandit", 2, (1, 1), 1, "discrete", (2, 2), 1)
    config = MAIQLConfig(hidden=(16, 16), gamma=0.0, tau=0.05)
    agents = MAIQLAgents(spec, config)
    optimizers = [torch.optim.Adam(m.parameters(), lr=3e-3) for m in (agents.value, agents.actor, agents.critic)]
    for _ in range(200):
        action = (torch.rand(256, 2) < 0.2).long()
        batch = {
            "obs": torch.ones(256, 2, 1),
            "state": torch.ones(256, 1),
            "action": action,
            "action_features": F.one_hot(action, 2).float(),
            "reward": 10.0 * (action.sum(-1) == 2).float(),
            "terminal": torch.ones(256),
            "next_obs": torch.ones(256, 2, 1),
            "next_state": torch.ones(256, 1),
        }
        for loss_fn, optimizer in zip((value_loss, actor_loss, q_loss), optimizers):
            optimizer.zero_grad()
            loss_fn(agents, batch, config)["loss"].backward()
            optimizer.step()
        soft_update(agents.target_critic, agents.critic, config.tau)
    assert agents.act(torch.ones(1, 2, 1)).tolist() == [[1, 1]]
