"""Independent TD3+BC learner: the lambda normalisation, the target smoothing clip, terminal vs timeout masking,
independence of the agents, observation statistics and the refusal of discrete actions."""

import pytest
import torch

from lightning_mbmarl.algorithms.itd3_bc import ITD3BC
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.envs.icg import icg_spec
from lightning_mbmarl.learners.td3_bc import (
    OBS_STD_EPS,
    TD3BCAgents,
    TD3BCConfig,
    actor_loss,
    bc_lambda,
    critic_loss,
    smoothed_target_actions,
    td_target,
)

# Agent 0 controls 1 dimension, agent 1 controls 2: agent 0's second dimension is padding.
SPEC = EnvSpec("c", 2, (3, 2), 5, "continuous", (1, 2), 50)
SMALL = TD3BCConfig(hidden=(16, 16))


def _batch(b: int = 4) -> dict[str, torch.Tensor]:
    action = (torch.rand(b, 2, 2) * 2 - 1) * torch.as_tensor(SPEC.action_mask())
    return {
        "obs": torch.randn(b, 2, 3),
        "next_obs": torch.randn(b, 2, 3),
        "action": action,
        "reward": torch.arange(b, dtype=torch.float32),
        "terminal": torch.zeros(b),
        "timeout": torch.zeros(b),
    }


def test_bc_lambda_divides_alpha_by_each_agents_mean_absolute_q():
    q = torch.tensor([[1.0, -4.0], [-3.0, 2.0]], requires_grad=True)  # mean |q| per agent: 2 and 3
    lam = bc_lambda(q, alpha=2.5)
    torch.testing.assert_close(lam, torch.tensor([1.25, 2.5 / 3]))
    assert not lam.requires_grad


def test_actor_loss_q_term_does_not_depend_on_the_scale_of_q():
    torch.manual_seed(0)
    agents, batch = TD3BCAgents(SPEC, SMALL), _batch()
    with torch.no_grad():  # make Q positive everywhere so that scaling it keeps mean Q / mean |Q| fixed
        agents.critic.net.net.output_layer.weight.zero_()
        agents.critic.net.net.output_layer.bias.fill_(2.0)
    before = actor_loss(agents, batch, SMALL)
    with torch.no_grad():
        agents.critic.net.net.output_layer.bias.mul_(1000.0)
    after = actor_loss(agents, batch, SMALL)
    torch.testing.assert_close(after["loss"], before["loss"])
    # -lambda mean Q is exactly -alpha per agent; the rest is the squared error on real dimensions only.
    action = agents.actor(agents.normalize(batch["obs"]))
    bc = torch.stack(
        [
            (action[:, 0, :1] - batch["action"][:, 0, :1]).square().mean(),
            (action[:, 1] - batch["action"][:, 1]).square().mean(),
        ]
    )
    torch.testing.assert_close(after["loss"], -2 * SMALL.alpha + bc.sum())


def test_target_smoothing_noise_is_clipped_and_actions_stay_in_the_box():
    mask = torch.as_tensor(SPEC.action_mask())
    huge_noise = TD3BCConfig(policy_noise=1e5, noise_clip=0.5)  # |noise| < clip has probability ~1e-5 per draw
    zeros, generator = torch.zeros(1000, 2, 2), torch.Generator().manual_seed(0)
    smoothed = smoothed_target_actions(zeros, huge_noise, -1.0, 1.0, mask, generator)
    assert set(smoothed[:, 0, 0].abs().unique().tolist()) == {0.5}  # every draw hits the clip
    assert (smoothed[:, 0, 1] == 0).all()  # padding stays 0
    near_edge = smoothed_target_actions(torch.full((1000, 2, 2), 0.9), huge_noise, -1.0, 1.0, mask, generator)
    assert near_edge[:, 1].max() == 1.0 and near_edge[:, 1].min() == pytest.approx(0.4)
    # Noise and clip are measured in half-ranges of the box: [0, 4] has half-range 2, so the clip is 1.
    wide = smoothed_target_actions(torch.full((1000, 2, 2), 2.0), huge_noise, 0.0, 4.0, mask, generator)
    assert set(wide[:, 0, 0].unique().tolist()) == {1.0, 3.0}
    no_noise = TD3BCConfig(policy_noise=0.0)
    inside = zeros + 0.3 * mask
    torch.testing.assert_close(smoothed_target_actions(inside, no_noise, -1.0, 1.0, mask), inside)


def test_terminal_cuts_the_target_and_timeout_bootstraps():
    torch.manual_seed(0)
    config = TD3BCConfig(hidden=(16, 16), policy_noise=0.0, gamma=0.9)
    agents, batch = TD3BCAgents(SPEC, config), _batch(3)
    batch["terminal"] = torch.tensor([1.0, 0.0, 0.0])
    batch["timeout"] = torch.tensor([0.0, 1.0, 0.0])
    target = td_target(agents, batch, config)
    next_action = agents.target_actor(agents.normalize(batch["next_obs"]))
    q_next = agents.q_values(agents.target_critic, batch["next_obs"], next_action).min(dim=0).values
    reward = batch["reward"].unsqueeze(-1)
    torch.testing.assert_close(target[0], reward[0].expand(2))  # terminal: no bootstrap
    torch.testing.assert_close(target[1:], reward[1:] + 0.9 * q_next[1:])  # timeout bootstraps like any step


def test_agents_are_independent_learners():
    """Agent 0's critic loss depends on agent 0's observation and action only."""
    torch.manual_seed(0)
    config = TD3BCConfig(hidden=(16, 16), policy_noise=0.0)
    agents, batch = TD3BCAgents(SPEC, config), _batch()
    obs = batch["obs"].clone().requires_grad_(True)
    q = agents.q_values(agents.critic, obs, batch["action"])
    q[:, :, 0].sum().backward()
    assert obs.grad[:, 0].abs().sum() > 0 and (obs.grad[:, 1] == 0).all()
    loss = critic_loss(agents, batch, config)
    assert torch.isfinite(loss["loss"]) and loss["loss"].requires_grad
    loss["loss"].backward()
    assert all(p.grad is None for p in agents.actor.parameters())


def test_observation_statistics_standardise_and_survive_padding():
    agents = TD3BCAgents(SPEC, SMALL)
    obs = torch.randn(5000, 2, 3) * 4 + 3
    obs[:, 1, 2] = 0.0  # agent 1's padded feature
    agents.set_observation_statistics(obs)
    normalised = agents.normalize(obs)
    torch.testing.assert_close(normalised.mean(dim=0), torch.zeros(2, 3), atol=1e-4, rtol=0)
    assert normalised[:, 0].std(dim=0).sub(1).abs().max() < 1e-3
    assert (normalised[:, 1, 2] == 0).all() and agents.obs_std[1, 2] == OBS_STD_EPS
    assert set(agents.state_dict()) >= {"obs_mean", "obs_std"}  # checkpointed


def test_discrete_actions_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="continuous actions.*'icg' has discrete actions"):
        ITD3BC(env_spec=icg_spec())
