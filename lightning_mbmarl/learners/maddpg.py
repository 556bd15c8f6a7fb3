"""MADDPG (Lowe et al., 2017): deterministic per-agent actors, centralised per-agent critics ``Q_i(s, a_1..a_N)``.

* Continuous actions: ``mu_i(o_i) = center + half_range * tanh(net_i(o_i))``; exploration adds Gaussian noise and
  clips to the action box.
* Discrete actions: the actor outputs logits over the available choices. Critic and actor losses use a
  Gumbel-softmax straight-through sample (a one-hot action forward, the relaxed sample's gradient backward);
  target actions are the target actors' argmax; exploration samples the softmax, greedy acting takes the argmax.
* With ``opponent_conditioning`` actors also read the (predicted) actions of the other agents, as MASAC's do
  (AORDPG: AORPO's model usage on MADDPG); the same batch keys and conventions as :mod:`learners.masac` apply.

Batch keys: those of :mod:`lightning_mbmarl.learners.masac` (``obs, state, avail, action_features,
agent_rewards, terminal, next_obs, next_state, next_avail`` and optionally ``opponent_action_features``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP, agent_batch_mean
from lightning_mbmarl.learners.masac import (
    critic_input,
    current_opponent_features,
    joint_with_own,
    opponent_features,
)
from lightning_mbmarl.nn.distributions import MaskedCategorical


@dataclass
class MADDPGConfig:
    """Hyperparameters of MADDPG (defaults: the original paper's MPE settings, which AORPO's code also uses)."""

    hidden: tuple[int, ...] = (64, 64)  # hidden sizes of every actor and critic MLP
    actor_lr: float = 0.01  # Adam learning rate of the actors
    critic_lr: float = 0.01  # Adam learning rate of the critics
    gamma: float = 0.95  # discount factor
    tau: float = 0.01  # Polyak step of target actors and critics
    exploration_noise: float = 0.1  # std of the Gaussian noise on continuous actions while exploring
    gumbel_temperature: float = 1.0  # temperature of the Gumbel-softmax relaxation (discrete actions)
    action_l2: float = 1e-3  # weight of the squared pre-activations (tanh inputs / logits) in the actor loss
    max_grad_norm: float = 0.5  # gradient-norm clipping of actor and critic steps
    policy_delay: int = 1  # critic steps per actor step


def gumbel_softmax_st(logits: torch.Tensor, avail: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Straight-through Gumbel-softmax sample over the available choices: ``[..., A] -> [..., A]``.

    The value is a one-hot vector (an available choice, drawn with probability ``softmax(logits)``); the gradient
    is that of the relaxed sample ``softmax((logits + g) / temperature)``.
    """
    masked_log_probs = MaskedCategorical(logits, avail).log_probs
    return F.gumbel_softmax(masked_log_probs, tau=temperature, hard=True)


class MADDPGAgents(nn.Module):
    """Actors, critics and their target copies for ``N`` agents (no optimisers, no Lightning).

    Optimiser groups: ``actor.parameters()``, ``critic.parameters()``; the targets only move by ``soft_update``.
    """

    def __init__(
        self, spec: EnvSpec, state_dim: int, config: MADDPGConfig, opponent_conditioning: bool = False
    ) -> None:
        super().__init__()
        self.spec, self.config, self.opponent_conditioning = spec, config, opponent_conditioning
        n, a = spec.n_agents, spec.action_dim
        actor_in = spec.obs_dim + ((n - 1) * a if opponent_conditioning else 0)
        self.actor = AgentMLP(n, actor_in, a, config.hidden)
        self.critic = AgentMLP(n, state_dim + n * a, 1, config.hidden)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)
        self.center = 0.5 * (spec.action_high + spec.action_low)
        self.half_range = 0.5 * (spec.action_high - spec.action_low)

    def pre_activations(
        self, actor: AgentMLP, obs: torch.Tensor, opponent_action_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``actor``'s float32 outputs ``[..., N, A]``: tanh inputs (continuous) or logits (discrete)."""
        if not self.opponent_conditioning:
            return actor(obs).float()
        if opponent_action_features is None:
            raise ValueError(
                "MADDPGAgents: the actors are conditioned on opponent actions, so "
                "opponent_action_features [..., N, (N-1)*A] is required (AORPO predicts them with its "
                "opponent models)"
            )
        return actor(torch.cat([obs, opponent_action_features.to(obs.dtype)], dim=-1)).float()

    def allowed(self, avail: torch.Tensor | None) -> torch.Tensor:
        """Choices an agent may take: available and not padding, bool ``[..., N, A]``."""
        return self.action_mask if avail is None else avail.bool() & self.action_mask

    def deterministic(self, pre: torch.Tensor, avail: torch.Tensor | None = None) -> torch.Tensor:
        """Action features ``[..., N, A]`` of the deterministic policy: squashed action or one-hot argmax."""
        if self.spec.discrete:
            choice = MaskedCategorical(pre, self.allowed(avail).expand(pre.shape)).mode()
            return F.one_hot(choice, self.spec.action_dim).float()
        return torch.where(self.action_mask, self.center + self.half_range * torch.tanh(pre), 0.0)

    def differentiable(self, pre: torch.Tensor, avail: torch.Tensor | None = None) -> torch.Tensor:
        """Action features with gradients to ``pre``: squashed action, or straight-through Gumbel-softmax."""
        if self.spec.discrete:
            return gumbel_softmax_st(pre, self.allowed(avail).expand(pre.shape), self.config.gumbel_temperature)
        return self.deterministic(pre)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        opponent_action_features: torch.Tensor | None = None,
        greedy: bool = False,
    ) -> torch.Tensor:
        """Team actions: int64 ``[..., N]`` or float ``[..., N, A]``.

        Greedy: argmax / squashed output. Exploring: a softmax sample / the output plus Gaussian noise, clipped.
        """
        pre = self.pre_activations(self.actor, obs, opponent_action_features)
        if self.spec.discrete:
            dist = MaskedCategorical(pre, self.allowed(avail).expand(pre.shape))
            return dist.mode() if greedy else dist.sample()
        action = self.deterministic(pre)
        if greedy:
            return action
        noisy = action + self.config.exploration_noise * torch.randn_like(action)
        clipped = noisy.clamp(self.spec.action_low, self.spec.action_high)
        return torch.where(self.action_mask, clipped, 0.0)


@torch.no_grad()
def next_target_actions(agents: MADDPGAgents, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The target actors' action features at the next step ``[B, N, A]``.

    With opponent conditioning each target actor first acts on the step-``t`` opponent features; each agent's
    next action is then recomputed from the others' first-pass actions (as in :func:`learners.masac.next_policy`).
    """
    next_obs, next_avail = batch["next_obs"], batch.get("next_avail")
    opponents = current_opponent_features(batch, agents.opponent_conditioning)
    features = agents.deterministic(agents.pre_activations(agents.target_actor, next_obs, opponents), next_avail)
    if not agents.opponent_conditioning:
        return features
    pre = agents.pre_activations(agents.target_actor, next_obs, opponent_features(features))
    return agents.deterministic(pre, next_avail)


@torch.no_grad()
def td_target(agents: MADDPGAgents, batch: Mapping[str, torch.Tensor], config: MADDPGConfig) -> torch.Tensor:
    """Per-agent targets ``[B, N]``: ``y_i = r_i + gamma (1 - terminal) Q'_i(s', mu'(o'))`` with target critics and
    target actors (:func:`next_target_actions`); time-outs bootstrap, only ``terminal`` cuts the return."""
    next_joint = next_target_actions(agents, batch)
    q_next = agents.target_critic(critic_input(batch["next_state"], joint_with_own(next_joint, next_joint)))
    continues = (1.0 - batch["terminal"].float()).unsqueeze(-1)
    return batch["agent_rewards"].float() + config.gamma * continues * q_next.float().squeeze(-1)


def critic_loss(
    agents: MADDPGAgents, batch: Mapping[str, torch.Tensor], config: MADDPGConfig
) -> dict[str, torch.Tensor]:
    """Squared TD error ``(Q_i(s, a) - y_i)^2`` averaged over the batch, summed over agents, ``y`` from
    :func:`td_target`. Returns ``loss`` and detached ``q`` (mean prediction), ``target`` (mean ``y``)."""
    joint = batch["action_features"].float()
    target = td_target(agents, batch, config)
    q = agents.critic(critic_input(batch["state"], joint_with_own(joint, joint))).float().squeeze(-1)
    loss = agent_batch_mean((q - target).square(), batch.get("agent_weights")).sum()
    return {"loss": loss, "q": q.detach().mean(), "target": target.mean()}


def actor_loss(
    agents: MADDPGAgents, batch: Mapping[str, torch.Tensor], config: MADDPGConfig
) -> dict[str, torch.Tensor]:
    """Deterministic policy gradient: ``-Q_i(s, mu_i(o_i), a_{-i})`` with the others' batch actions, plus
    ``action_l2`` times the squared pre-activations of real action dimensions; averaged over the batch, summed
    over agents. Returns ``loss`` and detached ``q`` and ``pre_activation_l2``."""
    joint, avail = batch["action_features"].float(), batch.get("avail")
    opponents = current_opponent_features(batch, agents.opponent_conditioning)
    pre = agents.pre_activations(agents.actor, batch["obs"], opponents)
    own = agents.differentiable(pre, avail)
    q = agents.critic(critic_input(batch["state"], joint_with_own(joint, own))).float().squeeze(-1)  # [B, N]
    l2 = torch.where(agents.action_mask, pre.square(), 0.0).sum(dim=-1)  # [B, N]
    loss = agent_batch_mean(config.action_l2 * l2 - q, batch.get("agent_weights")).sum()
    return {"loss": loss, "q": q.detach().mean(), "pre_activation_l2": l2.detach().mean()}
