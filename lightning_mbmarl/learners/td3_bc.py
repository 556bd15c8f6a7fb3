"""Independent TD3+BC (Fujimoto & Gu, 2021): the ITD3+BC baseline of the MOMA-PPO paper (§5.1, A.2).

Every agent ``i`` is an independent learner that sees only its own observation ``o_i`` and action ``a_i``:

* a deterministic actor ``mu_i(o_i) = center + half_range * tanh(net_i(o_i))`` in the action box;
* twin critics ``Q_i^{1,2}(o_i, a_i)`` with slowly moving target copies of critics and actor;
* critic target with target policy smoothing (TD3):
  ``y = r + gamma (1 - terminal) min_k Q'_i^k(o'_i, clip(mu'_i(o'_i) + clip(eps, -c, c)))``, ``eps ~ N(0, sigma^2)``;
  only ``terminal`` cuts the return, time-outs bootstrap;
* BC-regularised actor loss ``-lambda_i mean Q_i^1(o_i, mu_i(o_i)) + mean (mu_i(o_i) - a_i)^2`` with
  ``lambda_i = alpha / mean |Q_i^1|`` (detached), so the Q term has the same scale whatever the reward scale;
* observations standardised per feature with dataset statistics (TD3+BC's state normalisation).

Continuous actions only. Every agent learns from the team reward. Batch keys (the offline data module's):
``obs / next_obs [B, N, O]``, ``action [B, N, A]`` (float, in the action box), ``reward [B]``, ``terminal [B]``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP
from lightning_mbmarl.learners.masac import TwinCritic

# Added to the dataset standard deviation before dividing (TD3+BC's value); also keeps constant features finite.
OBS_STD_EPS = 1e-3


@dataclass
class TD3BCConfig:
    """Hyperparameters of independent TD3+BC (defaults: MOMA-PPO paper A.2, which keeps TD3+BC's own)."""

    hidden: tuple[int, ...] = (256, 256)  # hidden sizes of every actor and critic MLP
    actor_lr: float = 3e-4  # Adam learning rate of the actors
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # Polyak step of target actors and critics
    alpha: float = 2.5  # BC regularisation: lambda = alpha / mean |Q|
    policy_delay: int = 2  # critic steps per actor (and target) update
    policy_noise: float = 0.2  # std of the target policy smoothing noise, in half-ranges of the action box
    noise_clip: float = 0.5  # the smoothing noise is clipped to +-noise_clip half-ranges
    max_grad_norm: float = 1.0  # gradient-norm clipping of actor and critic steps
    normalize_observations: bool = True  # standardise observations with the dataset's mean and std


class DeterministicActor(nn.Module):
    """Per-agent ``obs [..., N, O] -> actions [..., N, A]`` in ``[low, high]`` (float32, 0 on padded dimensions)."""

    def __init__(self, spec: EnvSpec, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = AgentMLP(spec.n_agents, spec.obs_dim, spec.action_dim, hidden)
        self.center = 0.5 * (spec.action_high + spec.action_low)
        self.half_range = 0.5 * (spec.action_high - spec.action_low)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action = self.center + self.half_range * torch.tanh(self.net(obs).float())
        return torch.where(self.action_mask, action, 0.0)


class TD3BCAgents(nn.Module):
    """Actors, twin critics, their target copies and the observation statistics of ``N`` independent learners.

    Optimiser groups: ``actor.parameters()``, ``critic.parameters()``; the targets only move by ``soft_update``;
    ``obs_mean`` / ``obs_std`` ``[N, O]`` are buffers set once by :meth:`set_observation_statistics`.
    """

    def __init__(self, spec: EnvSpec, config: TD3BCConfig) -> None:
        super().__init__()
        if spec.discrete:
            raise ValueError(
                f"TD3+BC needs continuous actions, but environment {spec.name!r} has discrete actions; "
                "use MAIQL or IBC for discrete tasks"
            )
        self.spec = spec
        self.actor = DeterministicActor(spec, config.hidden)
        self.critic = TwinCritic(spec.n_agents, spec.obs_dim + spec.action_dim, 1, config.hidden)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("obs_mean", torch.zeros(spec.n_agents, spec.obs_dim))
        self.register_buffer("obs_std", torch.ones(spec.n_agents, spec.obs_dim))
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

    @torch.no_grad()
    def set_observation_statistics(self, obs: torch.Tensor) -> None:
        """Standardise with the per-agent, per-feature mean and ``std + OBS_STD_EPS`` of ``obs [M, N, O]``."""
        obs = obs.float().to(self.obs_mean.device)
        self.obs_mean.copy_(obs.mean(dim=0))
        self.obs_std.copy_(obs.std(dim=0, unbiased=False) + OBS_STD_EPS)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., N, O]`` standardised observations."""
        return (obs.float() - self.obs_mean) / self.obs_std

    def q_values(self, critic: TwinCritic, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Both twins ``[2, ..., N]`` of ``critic`` on standardised ``obs [..., N, O]`` and ``action [..., N, A]``."""
        return critic(torch.cat([self.normalize(obs), action.float()], dim=-1)).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic team actions ``[..., N, A]`` of the actors (TD3+BC never explores: it is offline)."""
        return self.actor(self.normalize(obs))


def smoothed_target_actions(
    actions: torch.Tensor,
    config: TD3BCConfig,
    low: float,
    high: float,
    action_mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TD3's target policy smoothing: ``clip(a + clip(eps, -c, c), low, high)`` with ``eps ~ N(0, sigma^2)``.

    ``actions [..., N, A]``; ``sigma = policy_noise`` and ``c = noise_clip`` in half-ranges of ``[low, high]``;
    padded dimensions (``action_mask [N, A]`` False) stay 0.
    """
    half_range = 0.5 * (high - low)
    noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=torch.float32)
    limit = config.noise_clip * half_range
    noise = (noise * config.policy_noise * half_range).clamp(-limit, limit)
    return torch.where(action_mask, (actions.float() + noise).clamp(low, high), 0.0)


@torch.no_grad()
def td_target(
    agents: TD3BCAgents,
    batch: Mapping[str, torch.Tensor],
    config: TD3BCConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-agent targets ``[B, N]``: ``r + gamma (1 - terminal) min_k Q'_i^k(o'_i, smoothed mu'_i(o'_i))``."""
    spec = agents.spec
    next_action = agents.target_actor(agents.normalize(batch["next_obs"]))
    next_action = smoothed_target_actions(
        next_action, config, spec.action_low, spec.action_high, agents.action_mask, generator
    )
    q_next = agents.q_values(agents.target_critic, batch["next_obs"], next_action).min(dim=0).values
    continues = (1.0 - batch["terminal"].float()).unsqueeze(-1)
    return batch["reward"].float().unsqueeze(-1) + config.gamma * continues * q_next


def critic_loss(
    agents: TD3BCAgents,
    batch: Mapping[str, torch.Tensor],
    config: TD3BCConfig,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Squared TD error of both twins against :func:`td_target`, averaged over the batch, summed over twins and
    agents (each agent's critic gets TD3's single-agent gradient). Returns ``loss``, detached ``q`` and ``target``."""
    target = td_target(agents, batch, config, generator)
    q = agents.q_values(agents.critic, batch["obs"], batch["action"])  # [2, B, N]
    loss = (q - target).square().mean(dim=1).sum()
    return {"loss": loss, "q": q.detach().mean(), "target": target.mean()}


def bc_lambda(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """TD3+BC's Q normalisation per agent: ``q [B, N] -> alpha / mean_B |q| [N]`` (detached)."""
    return alpha / q.detach().abs().mean(dim=0)


def actor_loss(agents: TD3BCAgents, batch: Mapping[str, torch.Tensor], config: TD3BCConfig) -> dict[str, torch.Tensor]:
    """``sum_i [-lambda_i mean_B Q_i^1(o_i, mu_i(o_i)) + mean_B mean_d (mu_i(o_i)_d - a_{i,d})^2]`` over each agent's
    real action dimensions ``d``. Returns ``loss`` and detached ``q``, ``bc`` (squared error) and ``lambda``."""
    action = agents.actor(agents.normalize(batch["obs"]))
    q = agents.q_values(agents.critic, batch["obs"], action)[0]  # [B, N]
    mask = agents.action_mask
    squared = torch.where(mask, (action - batch["action"].float()).square(), 0.0)
    bc = (squared.sum(dim=-1) / mask.sum(dim=-1)).mean(dim=0)  # [N]
    lam = bc_lambda(q, config.alpha)
    loss = (-lam * q.mean(dim=0) + bc).sum()
    return {"loss": loss, "q": q.detach().mean(), "bc": bc.detach().mean(), "lambda": lam.mean()}
