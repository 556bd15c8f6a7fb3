"""Multi-Agent Soft Actor-Critic (MASAC): the policy learner of AORPO (Zhang et al., §5.1, Eq. 4-5).

Every agent ``i`` has

* a stochastic actor ``pi_i(a_i | o_i)``: a tanh-squashed Gaussian in the action box (continuous) or a masked
  categorical (discrete). With ``opponent_conditioning`` it also reads the (predicted) actions of the other
  ``N - 1`` agents, AORPO's ``pi(a_i | s, â_{-i})`` (Eq. 4);
* twin centralised critics ``Q_i^{1,2}(s, a_i, a_{-i})`` with slowly moving target copies (Eq. 5 with the
  minimum of the twins);
* its own temperature ``alpha_i = exp(log_alpha_i)``, tuned towards a target entropy.

Discrete actions use discrete SAC (expectations over the agent's own choices instead of samples): the critic of
agent ``i`` reads the state and the others' actions and returns one value per own choice, ``Q_i(s, a_{-i}, ·)``, so
the soft value ``sum_a pi_i(a) [min_k Q_i^k(a) - alpha_i log pi_i(a)]`` and the actor loss are exact
expectations (no reparameterisation, no relaxation bias). Continuous critics read the state and the joint action.

Batch keys read by the losses (``B`` transitions from the replay buffer or from model rollouts):

============================  ==========================  =================================================
key                           shape                       meaning
============================  ==========================  =================================================
``obs`` / ``next_obs``        float ``[B, N, O]``         per-agent observations now / after the step
``state`` / ``next_state``    float ``[B, S]``            global state (critic input)
``avail`` / ``next_avail``    bool ``[B, N, A]``          available choices (discrete; optional)
``action_features``           float ``[B, N, A]``         actions taken (one-hot / raw, ``encode_actions``)
``agent_rewards``             float ``[B, N]``            reward of each agent (team reward repeated if none)
``terminal``                  float ``[B]``               1 on absorbing transitions (never on time-outs)
``opponent_action_features``  float ``[B, N, (N-1)*A]``   optional: predicted others' actions (AORPO's
                                                          opponent models); default: the others' batch actions
============================  ==========================  =================================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP, agent_batch_mean
from lightning_mbmarl.learners.policies import CategoricalPolicy
from lightning_mbmarl.nn.distributions import MaskedCategorical
from lightning_mbmarl.learners.squashed import TanhGaussian, TanhGaussianPolicy


@dataclass
class MASACConfig:
    """Hyperparameters of MASAC (defaults: AORPO's released code where it has them, SAC's otherwise)."""

    hidden: tuple[int, ...] = (64, 64)  # hidden sizes of every actor and critic MLP (AORPO: 64)
    actor_lr: float = 3e-4  # Adam learning rate of the actors
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics
    alpha_lr: float = 3e-4  # Adam learning rate of log(alpha); 0 keeps alpha at initial_alpha
    gamma: float = 0.95  # discount factor (AORPO: 0.95)
    tau: float = 0.005  # Polyak step of the target critics, target <- (1 - tau) target + tau critic
    target_entropy: float | None = None  # per-agent entropy alpha aims at; None: -action dims / scaled log|A_i|
    discrete_entropy_scale: float = 0.5  # discrete default target entropy: this fraction of log|A_i|
    initial_alpha: float = 0.1  # starting temperature of every agent
    max_grad_norm: float = 10.0  # gradient-norm clipping of actor and critic steps
    policy_delay: int = 1  # critic steps per actor (and temperature) step


def opponent_features(action_features: torch.Tensor) -> torch.Tensor:
    """For each agent, the other agents' action features in agent order: ``[..., N, A] -> [..., N, (N-1)*A]``.

    Row ``i`` is ``[f_0, ..., f_{i-1}, f_{i+1}, ..., f_{N-1}]`` flattened.
    """
    n = action_features.shape[-2]
    others = torch.tensor([[j for j in range(n) if j != i] for i in range(n)], device=action_features.device)
    return action_features[..., others, :].flatten(-2)


def joint_with_own(joint: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Per agent, the joint action with its own slot replaced: ``joint, own [..., N, A] -> [..., N, N*A]``.

    Row ``i`` is ``[joint_0, ..., own_i, ..., joint_{N-1}]`` flattened (what agent ``i``'s critic reads when only
    agent ``i``'s action changes).
    """
    n = joint.shape[-2]
    diagonal = torch.eye(n, dtype=torch.bool, device=joint.device).unsqueeze(-1)  # [N (row), N (slot), 1]
    return torch.where(diagonal, own.unsqueeze(-3), joint.unsqueeze(-3)).flatten(-2)


def critic_input(state: torch.Tensor, action_context: torch.Tensor) -> torch.Tensor:
    """``[s ⊕ context_i]`` per agent: ``state [..., S], action_context [..., N, C] -> [..., N, S + C]``."""
    expanded = state.unsqueeze(-2).expand(*action_context.shape[:-1], state.shape[-1])
    return torch.cat([expanded.to(action_context.dtype), action_context], dim=-1)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging, parameter by parameter: ``target <- (1 - tau) target + tau source``."""
    for target_param, source_param in zip(target.parameters(), source.parameters(), strict=True):
        target_param.lerp_(source_param, tau)


class TwinCritic(nn.Module):
    """Two independent critics per agent, all ``2N`` in one batched MLP: ``[..., N, in] -> [2, ..., N, out]``."""

    def __init__(self, n_agents: int, in_features: int, out_features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = AgentMLP(2 * n_agents, in_features, out_features, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 values of both twins."""
        return torch.stack(self.net(torch.cat([x, x], dim=-2)).float().chunk(2, dim=-2))


class MASACAgents(nn.Module):
    """Actors, twin critics, target critics and temperatures of ``N`` agents (no optimisers, no Lightning).

    Optimiser groups: ``actor.parameters()``, ``critic.parameters()``, ``[log_alpha]``; ``target_critic`` only
    moves by :func:`soft_update`.
    """

    def __init__(self, spec: EnvSpec, state_dim: int, config: MASACConfig, opponent_conditioning: bool = False) -> None:
        super().__init__()
        self.spec, self.config, self.opponent_conditioning = spec, config, opponent_conditioning
        n, a = spec.n_agents, spec.action_dim
        actor_in = spec.obs_dim + ((n - 1) * a if opponent_conditioning else 0)
        self.actor: CategoricalPolicy | TanhGaussianPolicy = (
            CategoricalPolicy(spec, actor_in, config.hidden)
            if spec.discrete
            else TanhGaussianPolicy(spec, actor_in, config.hidden)
        )
        # Discrete: Q_i(s, a_{-i}, ·) [A]; continuous: Q_i(s, a) [1] (module docstring).
        critic_in = state_dim + ((n - 1) * a if spec.discrete else n * a)
        self.critic = TwinCritic(n, critic_in, a if spec.discrete else 1, config.hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((n,), math.log(config.initial_alpha)))
        self.register_buffer("target_entropy", default_target_entropy(spec, config))

    def policy(
        self, obs: torch.Tensor, avail: torch.Tensor | None = None, opponent_action_features: torch.Tensor | None = None
    ) -> TanhGaussian | MaskedCategorical:
        """Per-agent action distributions from ``obs [..., N, O]`` (and ``[..., N, (N-1)*A]`` opponent features)."""
        if not self.opponent_conditioning:
            return self.actor(obs, avail)
        if opponent_action_features is None:
            raise ValueError(
                "MASACAgents: the actors are conditioned on opponent actions, so opponent_action_features "
                "[..., N, (N-1)*A] is required (AORPO predicts them with its opponent models)"
            )
        return self.actor(torch.cat([obs, opponent_action_features.to(obs.dtype)], dim=-1), avail)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        opponent_action_features: torch.Tensor | None = None,
        greedy: bool = False,
    ) -> torch.Tensor:
        """Team actions: int64 ``[..., N]`` or float ``[..., N, A]``; greedy = argmax / squashed mean."""
        dist = self.policy(obs, avail, opponent_action_features)
        if greedy:
            return dist.mode()
        return dist.sample() if self.spec.discrete else dist.rsample()[0]

    def sampled_features(self, dist: TanhGaussian | MaskedCategorical) -> torch.Tensor:
        """Sampled action features ``[..., N, A]`` (one-hot for discrete), without gradients."""
        with torch.no_grad():
            if self.spec.discrete:
                return F.one_hot(dist.sample(), self.spec.action_dim).float()
            return dist.rsample()[0]


def default_target_entropy(spec: EnvSpec, config: MASACConfig) -> torch.Tensor:
    """Per-agent target entropy ``[N]``: the configured value, or ``-dims_i`` (continuous) /
    ``discrete_entropy_scale * log(choices_i)`` (discrete)."""
    if config.target_entropy is not None:
        return torch.full((spec.n_agents,), float(config.target_entropy))
    sizes = torch.tensor(spec.action_sizes, dtype=torch.float32)
    return config.discrete_entropy_scale * sizes.log() if spec.discrete else -sizes


def current_opponent_features(batch: Mapping[str, torch.Tensor], conditioning: bool) -> torch.Tensor | None:
    """What conditioned actors read at the batch's step (None when ``conditioning`` is off): the batch's
    ``opponent_action_features`` where given, else the others' batch actions."""
    if not conditioning:
        return None
    if "opponent_action_features" in batch:
        return batch["opponent_action_features"].float()
    return opponent_features(batch["action_features"].float())


def next_policy(agents: MASACAgents, batch: Mapping[str, torch.Tensor]) -> TanhGaussian | MaskedCategorical:
    """The current actors' distributions at the next step.

    With opponent conditioning, agent ``i`` at ``t+1`` reads the next actions of the other agents' actors. Those are
    drawn first with every actor conditioned on the step-``t`` opponent features (the best guess before anyone acts
    at ``t+1``); agent ``i``'s distribution is then conditioned on the others' drawn actions.
    """
    next_obs, next_avail = batch["next_obs"], batch.get("next_avail")
    if not agents.opponent_conditioning:
        return agents.policy(next_obs, next_avail)
    now = current_opponent_features(batch, conditioning=True)
    draft = agents.sampled_features(agents.policy(next_obs, next_avail, now))
    return agents.policy(next_obs, next_avail, opponent_features(draft))


@torch.no_grad()
def soft_bellman_target(agents: MASACAgents, batch: Mapping[str, torch.Tensor], config: MASACConfig) -> torch.Tensor:
    """Per-agent soft Bellman targets ``[B, N]`` (Eq. 5):

    ``y_i = r_i + gamma (1 - terminal) [min_k Q'_i^k(s', a') - alpha_i log pi_i(a'_i | s')]`` with ``a'`` drawn from
    the current actors (:func:`next_policy`) and ``Q'`` the target critics; for discrete actions the bracket is the
    exact expectation over agent ``i``'s own next choice. Time-outs bootstrap: only ``terminal`` cuts the return.
    """
    dist = next_policy(agents, batch)
    alpha = agents.log_alpha.exp()
    if agents.spec.discrete:
        next_others = opponent_features(agents.sampled_features(dist))
        q_next = agents.target_critic(critic_input(batch["next_state"], next_others)).min(dim=0).values  # [B, N, A]
        soft = dist.probs * (q_next - alpha.unsqueeze(-1) * dist.log_probs)
        soft_value = torch.where(dist.avail, soft, 0.0).sum(dim=-1)
    else:
        next_action, next_log_prob = dist.rsample()
        next_joint = joint_with_own(next_action, next_action)
        q_next = agents.target_critic(critic_input(batch["next_state"], next_joint)).min(dim=0).values.squeeze(-1)
        soft_value = q_next - alpha * next_log_prob
    continues = (1.0 - batch["terminal"].float()).unsqueeze(-1)
    return batch["agent_rewards"].float() + config.gamma * continues * soft_value


def critic_loss(agents: MASACAgents, batch: Mapping[str, torch.Tensor], config: MASACConfig) -> dict[str, torch.Tensor]:
    """``0.5 (Q_i^k(s, a) - y_i)^2`` (Eq. 5) averaged over the batch, summed over both twins ``k`` and agents ``i``,
    with ``y`` from :func:`soft_bellman_target`. Returns ``loss`` and detached ``q`` (mean prediction) and
    ``target`` (mean ``y``)."""
    joint, state = batch["action_features"].float(), batch["state"]
    target = soft_bellman_target(agents, batch, config)
    if agents.spec.discrete:
        q = (agents.critic(critic_input(state, opponent_features(joint))) * joint).sum(dim=-1)  # [2, B, N]
    else:
        q = agents.critic(critic_input(state, joint_with_own(joint, joint))).squeeze(-1)
    loss = agent_batch_mean(0.5 * (q - target).square(), batch.get("agent_weights")).sum()
    return {"loss": loss, "q": q.detach().mean(), "target": target.mean()}


def actor_loss(agents: MASACAgents, batch: Mapping[str, torch.Tensor], config: MASACConfig) -> dict[str, torch.Tensor]:
    """Policy loss (Eq. 4): ``E[alpha_i log pi_i(a_i) - min_k Q_i^k(s, a_i, a_{-i})]``, summed over agents.

    Each agent's own action is re-drawn from its actor (reparameterised, or an exact expectation for discrete
    actions); the others' actions are the batch's. Returns ``loss`` and detached ``agent_entropy [N]`` (input of
    :func:`alpha_loss`), ``entropy`` (its mean) and ``q`` (mean ``min_k Q``).
    """
    joint, state = batch["action_features"].float(), batch["state"]
    opponents = current_opponent_features(batch, agents.opponent_conditioning)
    dist = agents.policy(batch["obs"], batch.get("avail"), opponents)
    alpha = agents.log_alpha.exp().detach()
    if agents.spec.discrete:
        q = agents.critic(critic_input(state, opponent_features(joint))).min(dim=0).values  # [B, N, A]
        per_choice = dist.probs * (alpha.unsqueeze(-1) * dist.log_probs - q)
        per_agent = torch.where(dist.avail, per_choice, 0.0).sum(dim=-1)
        entropy = dist.entropy()
        q_mean = torch.where(dist.avail, dist.probs * q, 0.0).sum(dim=-1).mean()
    else:
        action, log_prob = dist.rsample()
        q = agents.critic(critic_input(state, joint_with_own(joint, action))).min(dim=0).values.squeeze(-1)
        per_agent = alpha * log_prob - q
        entropy = -log_prob
        q_mean = q.mean()
    weights = batch.get("agent_weights")
    agent_entropy = agent_batch_mean(entropy.detach(), weights)
    return {
        "loss": agent_batch_mean(per_agent, weights).sum(),
        "agent_entropy": agent_entropy,
        "entropy": agent_entropy.mean(),
        "q": q_mean.detach(),
    }


def alpha_loss(agents: MASACAgents, agent_entropy: torch.Tensor) -> dict[str, torch.Tensor]:
    """Temperature loss ``sum_i log_alpha_i (H_i - target_i)``: alpha grows while an agent's entropy ``H_i``
    (``[N]``, from :func:`actor_loss`) is below its target, and shrinks while above. Returns ``loss`` and ``alpha``
    (mean temperature, detached)."""
    loss = (agents.log_alpha * (agent_entropy.detach() - agents.target_entropy)).sum()
    return {"loss": loss, "alpha": agents.log_alpha.detach().exp().mean()}
