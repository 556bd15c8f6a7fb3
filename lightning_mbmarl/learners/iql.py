"""MAIQL: implicit Q-learning (Kostrikov et al., 2022) with QMIX decomposition of Q and V (MOMA-PPO paper, A.1).

Every agent ``i`` has a utility ``Q_i(h_i, a_i)``, a value ``V_i(h_i)`` and a stochastic actor ``pi_i(a_i | h_i)``,
all reading its own observation ``h_i = o_i``. State-conditioned QMIX mixers (:class:`ValueMixer`, one for Q, one
for V, and a target copy of Q with its mixer) make team values (Eq. 4-5)::

    V(s) = sum_i w_V^i(s) V_i(h_i) + b_V(s)        Q(s, a) = sum_i w_Q^i(s) Q_i(h_i, a_i) + b_Q(s)

Losses, in the order one gradient step applies them (IQL's own order):

1. value (Eq. 1): expectile regression of ``V(s)`` towards the target ``Q^(s, a)`` of dataset actions,
   ``|e - 1(u < 0)| u^2`` with ``u = Q^(s, a) - V(s)``;
2. actor (Eq. 7): advantage-weighted regression with the decomposed weight
   ``B(s) prod_i exp(beta (w^_Q^i Q^_i(h_i, a_i) - w_V^i V_i(h_i)))``, ``B(s) = exp(b^_Q(s) - b_V(s))``, times
   ``-sum_j log pi_j(a_j | h_j)``. As the paper writes it, ``B`` is not tempered by ``beta``, so the weight is
   ``exp(beta (Q^ - V) - (beta - 1)(b^_Q - b_V))`` rather than Eq. 3's ``exp(beta (Q^ - V))``. For stability the
   weight is computed in log space and clipped at ``max_weight`` (100, IQL's released value);
3. Q (Eq. 2): ``(r + gamma (1 - terminal) V(s') - Q(s, a))^2``; only ``terminal`` cuts the return, time-outs
   bootstrap; then the target Q network and mixer move towards Q by ``tau``.

Actors: masked categorical (discrete), tanh-squashed Gaussian with state-dependent std (continuous, "IQL uses Tanh
squashing", A.2). Batch keys (the offline data module's): ``state / next_state [B, S]``, ``obs / next_obs
[B, N, O]``, ``action`` (int64 ``[B, N]`` or float ``[B, N, A]``), ``action_features [B, N, A]``, ``avail
[B, N, A]`` (optional), ``reward [B]`` (team reward), ``terminal [B]``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP
from lightning_mbmarl.learners.policies import CategoricalPolicy
from lightning_mbmarl.nn.distributions import MaskedCategorical
from lightning_mbmarl.learners.squashed import TanhGaussian, TanhGaussianPolicy
from lightning_mbmarl.learners.value_mixer import ValueMixer

# Dataset actions are pulled this far inside the action box before tanh is inverted (atanh(+-1) is infinite).
ATANH_EPS = 1e-6


@dataclass
class MAIQLConfig:
    """Hyperparameters of MAIQL (defaults: MOMA-PPO paper A.1-A.2, IQL's released code where the paper is silent)."""

    hidden: tuple[int, ...] = (256, 256)  # hidden sizes of every per-agent network and mixer hypernetwork
    actor_lr: float = 3e-4  # Adam learning rate of the actors
    value_lr: float = 3e-4  # Adam learning rate of the V utilities and their mixer
    critic_lr: float = 3e-4  # Adam learning rate of the Q utilities and their mixer
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # Polyak step of the target Q utilities and mixer
    expectile: float = 0.7  # e of the expectile value loss (Eq. 1); 0.5 is plain SARSA
    temperature: float = 3.0  # beta of the advantage weights (Eq. 3, 7)
    max_weight: float = 100.0  # advantage weights are clipped to at most this (IQL's released value)
    max_grad_norm: float = 1.0  # gradient-norm clipping of every step


@dataclass
class Decomposition:
    """A QMIX-decomposed team value for ``B`` samples: ``total = sum_i weights_i * utilities_i + bias``.

    utilities, weights: float32 ``[B, N]``; bias: float32 ``[B]``.
    """

    utilities: torch.Tensor
    weights: torch.Tensor
    bias: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """float32 ``[B]``."""
        return (self.weights * self.utilities).sum(dim=-1) + self.bias


class MixedValue(nn.Module):
    """Per-agent utilities ``U_i(o_i)`` (a V) or ``U_i(o_i, a_i)`` (a Q) and their state-conditioned QMIX mixer.

    Discrete Q utilities output one value per choice and pick the taken one; continuous ones read ``[o_i ⊕ a_i]``.
    """

    def __init__(self, spec: EnvSpec, hidden: tuple[int, ...], with_actions: bool) -> None:
        super().__init__()
        self.with_actions, self.discrete = with_actions, spec.discrete
        reads_action = with_actions and not spec.discrete
        outputs = spec.action_dim if with_actions and spec.discrete else 1
        in_features = spec.obs_dim + (spec.action_dim if reads_action else 0)
        self.utilities = AgentMLP(spec.n_agents, in_features, outputs, hidden)
        self.mixer = ValueMixer(spec.n_agents, spec.state_dim, hidden)

    def forward(
        self, obs: torch.Tensor, state: torch.Tensor, action_features: torch.Tensor | None = None
    ) -> Decomposition:
        """obs ``[B, N, O]``, state ``[B, S]``, action_features ``[B, N, A]`` (Q only: one-hot / raw actions)."""
        if self.with_actions and action_features is None:
            raise ValueError("MixedValue: a Q decomposition needs action_features [B, N, A]")
        if not self.with_actions:
            utilities = self.utilities(obs).float().squeeze(-1)
        elif self.discrete:
            utilities = (self.utilities(obs).float() * action_features.float()).sum(dim=-1)
        else:
            utilities = self.utilities(torch.cat([obs, action_features.to(obs.dtype)], dim=-1)).float().squeeze(-1)
        weights, bias = self.mixer.mixing(state)
        return Decomposition(utilities, weights, bias)


class MAIQLAgents(nn.Module):
    """Actors, mixed Q, its target copy, and mixed V of ``N`` agents (no optimisers, no Lightning).

    Optimiser groups: ``actor.parameters()``, ``value.parameters()``, ``critic.parameters()``; ``target_critic``
    only moves by ``soft_update``.
    """

    def __init__(self, spec: EnvSpec, config: MAIQLConfig) -> None:
        super().__init__()
        self.spec = spec
        self.actor: CategoricalPolicy | TanhGaussianPolicy = (
            CategoricalPolicy(spec, spec.obs_dim, config.hidden)
            if spec.discrete
            else TanhGaussianPolicy(spec, spec.obs_dim, config.hidden)
        )
        self.critic = MixedValue(spec, config.hidden, with_actions=True)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = MixedValue(spec, config.hidden, with_actions=False)

    def policy(self, obs: torch.Tensor, avail: torch.Tensor | None = None) -> MaskedCategorical | TanhGaussian:
        """Per-agent action distributions from ``obs [..., N, O]`` (``avail [..., N, A]`` for discrete actions)."""
        return self.actor(obs, avail)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor | None = None, greedy: bool = True) -> torch.Tensor:
        """Team actions: int64 ``[..., N]`` or float ``[..., N, A]``; greedy = argmax / squashed mean."""
        dist = self.policy(obs, avail)
        if greedy:
            return dist.mode()
        return dist.sample() if self.spec.discrete else dist.rsample()[0]


def dataset_log_prob(dist: MaskedCategorical | TanhGaussian, action: torch.Tensor) -> torch.Tensor:
    """``log pi_i(a_i | h_i)`` of dataset actions, float32 ``[B, N]``.

    Continuous actions are mapped back through the squashing, ``u = atanh((a - center) / half_range)``, after
    pulling them ``ATANH_EPS`` inside the box.
    """
    if isinstance(dist, MaskedCategorical):
        return dist.log_prob(action)
    unit = ((action.float() - dist.center) / dist.half_range).clamp(-1.0 + ATANH_EPS, 1.0 - ATANH_EPS)
    return dist.log_prob_of_pre_squash(torch.atanh(unit))


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Eq. 1's asymmetric square, averaged: ``mean |e - 1(diff < 0)| diff^2`` for ``diff = Q^ - V``."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean()


def awr_weights(q: Decomposition, v: Decomposition, temperature: float, max_weight: float) -> torch.Tensor:
    """Eq. 7's decomposed advantage weight per sample, ``[B]``, clipped at ``max_weight``:

    ``min(B(s) prod_i exp(beta (w_Q^i Q_i - w_V^i V_i)), max_weight)`` with ``B(s) = exp(b_Q(s) - b_V(s))``,
    computed as one exponential of the clipped log-weight (no overflow, no gradient).
    """
    per_agent = (q.weights * q.utilities - v.weights * v.utilities).sum(dim=-1)
    log_weight = temperature * per_agent + (q.bias - v.bias)
    return log_weight.detach().clamp(max=math.log(max_weight)).exp()


def value_loss(agents: MAIQLAgents, batch: Mapping[str, torch.Tensor], config: MAIQLConfig) -> dict[str, torch.Tensor]:
    """Eq. 1 on the mixed values: expectile regression of ``V(s)`` towards the target ``Q^(s, a)``.

    Returns ``loss`` and detached ``v`` (mean ``V(s)``) and ``q`` (mean target ``Q^``)."""
    with torch.no_grad():
        q = agents.target_critic(batch["obs"], batch["state"], batch["action_features"]).total
    v = agents.value(batch["obs"], batch["state"]).total
    return {"loss": expectile_loss(q - v, config.expectile), "v": v.detach().mean(), "q": q.mean()}


def actor_loss(agents: MAIQLAgents, batch: Mapping[str, torch.Tensor], config: MAIQLConfig) -> dict[str, torch.Tensor]:
    """Eq. 7: ``-mean_B [weight(s, a) sum_j log pi_j(a_j | h_j)]`` with :func:`awr_weights` from the target Q and V.

    Returns ``loss`` and detached ``weight`` (mean advantage weight) and ``log_prob`` (mean per-agent log-prob)."""
    with torch.no_grad():
        q = agents.target_critic(batch["obs"], batch["state"], batch["action_features"])
        v = agents.value(batch["obs"], batch["state"])
        weight = awr_weights(q, v, config.temperature, config.max_weight)
    log_prob = dataset_log_prob(agents.policy(batch["obs"], batch.get("avail")), batch["action"])  # [B, N]
    loss = -(weight * log_prob.sum(dim=-1)).mean()
    return {"loss": loss, "weight": weight.mean(), "log_prob": log_prob.detach().mean()}


def q_loss(agents: MAIQLAgents, batch: Mapping[str, torch.Tensor], config: MAIQLConfig) -> dict[str, torch.Tensor]:
    """Eq. 2 on the mixed values: ``mean (r + gamma (1 - terminal) V(s') - Q(s, a))^2``.

    Returns ``loss`` and detached ``q`` (mean ``Q(s, a)``) and ``target``."""
    with torch.no_grad():
        next_v = agents.value(batch["next_obs"], batch["next_state"]).total
        continues = 1.0 - batch["terminal"].float()
        target = batch["reward"].float() + config.gamma * continues * next_v
    q = agents.critic(batch["obs"], batch["state"], batch["action_features"]).total
    return {"loss": (q - target).square().mean(), "q": q.detach().mean(), "target": target.mean()}
