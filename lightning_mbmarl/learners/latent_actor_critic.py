"""MAMBA's learner on world-model features: a per-agent policy and an attention critic, trained with the package's
MAPPO loss (:func:`~lightning_mbmarl.learners.mappo.ppo_loss`) on imagined trajectories.

The policy is categorical for discrete actions; for continuous ones it is the package MAPPO's Gaussian
(:class:`~lightning_mbmarl.learners.policies.GaussianPolicy`: state-dependent mean and std, no tanh squashing), with
its entropy handling (the adaptive per-agent entropy bonus) and its action-bound penalty (MOMA-PPO A.1) in
``ppo_loss``. A sampled action is kept as sampled for its log-probability and clipped to the action box where it
enters the world model (imagination) or the environment (acting), so both only ever see actions in the box. (The
released MAMBA and MABL code have no continuous policy; bounded by clipping, not squashed, is this package's choice.)

Both read the latent features ``[deter, stoch]`` of :class:`~lightning_mbmarl.world_models.rssm.RSSMState`
(``[..., N, F]``). The policy is masked by an availability mask (the world model's prediction in imagination, the
environment's when acting for real). The critic embeds each agent's features, mixes them with self-attention across
agents and reads one value per agent; the team value is their mean (MAMBA's agents all predict the team reward).
With ``agent_values`` the critic's per-agent values are kept instead, each the value of that agent's own predicted
reward (MABL §2 writes each agent's reward ``r^i`` and value ``Q_i``; see :func:`imagined_ppo_batch`).

Features are ``[deter, C one-hot categorical samples]`` (:class:`~lightning_mbmarl.nn.one_hot_input.LatentLayout`):
both networks take them as the dense ``deter`` and the ``C`` columns that hold a 1, and their first layer gathers
those columns' weights instead of multiplying ``C * K`` mostly-zero inputs (the same values up to float summation
order; in MAMBA's SMAC sizes the first layers read 1280 inputs of which 256 are dense).

Batch keys read by :meth:`LatentActorCritic.evaluate_actions` and ``ppo_loss`` (``M`` imagined steps, flattened):

================  ======================  ==========================================================
key               shape / dtype           meaning
================  ======================  ==========================================================
``deter``         float ``[M, N, D]``     deterministic part of the state the action was taken in
``hot``           int64 ``[M, N, C]``     columns of its features holding its sampled classes' 1s
``avail``         bool ``[M, N, A]``      predicted availability the policy acted under
``action``        int64 ``[M, N]``        actions taken (continuous: float ``[M, N, A]``, as sampled)
``old_log_prob``  float ``[M, N]``        their log-probabilities under the acting policy
``advantage``     float ``[M]``           team advantage (timeout-aware GAE); ``[M, N]`` per agent
``return``        float ``[M]``           team return target of the critic; ``[M, N]`` per agent
================  ======================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.gae import timeout_gae
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.learners.policies import make_policy
from lightning_mbmarl.nn.distributions import Distribution
from lightning_mbmarl.nn.fast_path import Float32OutputLinear
from lightning_mbmarl.nn.one_hot_input import LatentLayout, OneHotInputMLP
from lightning_mbmarl.nn.attention import AgentAttention


@dataclass
class AttentionCriticConfig:
    """Shape of the attention critic (MAMBA: embedding -> one attention layer -> MLP)."""

    attention_layers: int = 1  # transformer encoder layers across agents
    attention_heads: int = 8  # heads of each layer (must divide mappo.hidden[0])


class AttentionCritic(nn.Module):
    """A value per agent from every agent's features: ``[..., N, F] -> float32 [..., N]``.

    ``Linear(F, hidden[0]) -> ReLU -> attention across agents -> MLP(hidden[1:]) -> value per agent`` (the output
    layer in float32 inside autocast regions).
    """

    def __init__(self, n_agents: int, feature_dim: int, hidden: tuple[int, ...], config: AttentionCriticConfig) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("AttentionCritic: mappo.hidden needs at least one size (the attention width)")
        width = hidden[0]
        self.embed = nn.Sequential(nn.Linear(feature_dim, width), nn.ReLU())
        self.attention = AgentAttention(n_agents, width, config.attention_layers, config.attention_heads, width, 0.0)
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.head = nn.Sequential(*layers, Float32OutputLinear(hidden[-1], 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self._value_of_embedding(self.embed(features))

    def forward_one_hot(self, dense: torch.Tensor, hot: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on features given as ``dense [..., N, d]`` and hot columns int64 ``[..., N, J]``."""
        embedded = OneHotInputMLP(self.embed)(dense.reshape(1, -1, dense.shape[-1]), hot.reshape(1, -1, hot.shape[-1]))
        return self._value_of_embedding(embedded.view(*dense.shape[:-1], -1))

    def _value_of_embedding(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.head(self.attention(embedded)).squeeze(-1).float()  # [..., N]


class LatentActorCritic(nn.Module):
    """Policy and critic on latent features (see the module docstring); duck-types what ``ppo_loss`` reads."""

    def __init__(
        self,
        spec: EnvSpec,
        layout: LatentLayout,
        config: MAPPOConfig,
        critic: AttentionCriticConfig,
        policy_layout: LatentLayout | None = None,
        agent_values: bool = False,
    ) -> None:
        """``agent_values``: values (and so advantages and returns) per agent, of each agent's own reward, instead of
        the team's: their mean."""
        super().__init__()
        self.spec, self.layout, self.config, self.agent_values = spec, layout, config, agent_values
        # The policy may read a part of the features: the first policy_layout.deter dense columns and the first
        # policy_layout.categoricals one-hot blocks (MABL: each agent's own level, [h^a, z^a] of [h^a, h^g, z^a, z^g]).
        self.policy_layout = policy_layout or layout
        if self.policy_layout.deter > layout.deter or self.policy_layout.categoricals > layout.categoricals:
            raise ValueError(f"LatentActorCritic: policy_layout {self.policy_layout} must be a part of {layout}")
        self.policy = make_policy(
            spec, self.policy_layout.width, config.hidden, config.share_parameters, config.min_std
        )
        self.critic = AttentionCritic(spec.n_agents, layout.width, config.hidden, critic)

    def policy_inputs(self, deter: torch.Tensor, hot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's part of features given as ``layout``'s ``(deter [..., D], hot [..., C])``, in the policy's
        own columns."""
        p = self.policy_layout
        if p == self.layout:
            return deter, hot
        return deter[..., : p.deter], hot[..., : p.categoricals] - (self.layout.deter - p.deter)

    @property
    def action_mask(self) -> torch.Tensor:
        """bool ``[N, A]``: each agent's real choices / dimensions (what ``ppo_loss``'s action penalty reads)."""
        return self.policy.action_mask

    def distribution(self, features: torch.Tensor, avail: torch.Tensor) -> Distribution:
        """The policy on latent features ``[..., N, F]`` under availability bool ``[..., N, A]``."""
        return self.policy.forward_one_hot(*self.policy_inputs(*self.layout.split(features)), avail)

    @torch.no_grad()
    def act(
        self, features: torch.Tensor, avail: torch.Tensor, greedy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (int64 ``[..., N]``, or continuous ``[..., N, A]``, unclipped) sampled or the most likely, and their
        float32 log-probs ``[..., N]``."""
        return self._choose(self.distribution(features, avail), greedy)

    @torch.no_grad()
    def act_on_policy_features(
        self, features: torch.Tensor, avail: torch.Tensor, greedy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`act` given only the policy's part of the features, ``[..., N, policy_layout.width]`` (decentralised
        execution: nothing else is needed)."""
        return self._choose(self.policy.forward_one_hot(*self.policy_layout.split(features), avail), greedy)

    @staticmethod
    def _choose(dist: Distribution, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        actions = dist.mode() if greedy else dist.sample()
        return actions, dist.log_prob(actions)

    def value(self, features: torch.Tensor) -> torch.Tensor:
        """Value float32 of features ``[..., N, F]``: the team's ``[...]``, or each agent's ``[..., N]`` with
        ``agent_values``."""
        return self._of_agent_values(self.critic.forward_one_hot(*self.layout.split(features)))

    def evaluate_actions(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_probs [M, N], entropy [M, N], values [M] or [M, N])`` in float32, for ``ppo_loss``."""
        dist = self.policy.forward_one_hot(*self.policy_inputs(batch["deter"], batch["hot"]), batch["avail"])
        values = self._of_agent_values(self.critic.forward_one_hot(batch["deter"], batch["hot"]))
        return dist.log_prob(batch["action"]), dist.entropy(), values

    def _of_agent_values(self, agent_values: torch.Tensor) -> torch.Tensor:
        """The critic's ``[..., N]`` as this learner's values: kept per agent, or their mean, the team value."""
        return agent_values if self.agent_values else agent_values.mean(dim=-1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups with the actor and critic learning rates."""
        return [
            {"name": "actor", "params": list(self.policy.parameters()), "lr": self.config.actor_lr},
            {"name": "critic", "params": list(self.critic.parameters()), "lr": self.config.critic_lr},
        ]


@torch.no_grad()
def imagined_ppo_batch(
    actor_critic: LatentActorCritic, rollout: Mapping[str, torch.Tensor], gamma: float, gae_lambda: float
) -> dict[str, torch.Tensor]:
    """The PPO batch of an imagined rollout (:func:`~lightning_mbmarl.world_models.imagination.imagine`'s output,
    time first: ``features [H + 1, B, N, F]``, the others ``[H, B, ...]``).

    The team reward is the agents' mean predicted reward (the released MAMBA and MABL learners); with the learner's
    ``agent_values`` each agent's advantage and return come from its own predicted reward and value instead (MABL §2:
    agent ``i`` receives ``r^i`` and maximises ``Q_i``; the same where every agent predicts the team reward). The
    imagined episode ends where the agents' mean predicted continuation probability falls to 0.5 or below. GAE
    (:func:`~lightning_mbmarl.learners.gae.timeout_gae`) treats that step as terminal and bootstraps the last step
    from the critic. Steps after a predicted end are dropped. Returns the keys of the module docstring, flattened to
    ``[M]`` (``M <= H * B``; ``advantage`` and ``return`` ``[M, N]`` per agent), float32 where floating.
    """
    features = rollout["features"]
    values = actor_critic.value(features)  # [H + 1, B], or [H + 1, B, N] per agent
    deter, hot = actor_critic.layout.split(features[:-1])
    rewards = rollout["rewards"].float()  # [H, B, N]
    continues = (rollout["discounts"].float().mean(dim=-1) > 0.5).float()  # [H, B]
    if actor_critic.agent_values:
        masks = continues.unsqueeze(-1).expand_as(rewards)
    else:
        rewards, masks = rewards.mean(dim=-1), continues
    advantages, returns = timeout_gae(
        rewards, values[:-1], values[1:], masks, torch.ones_like(masks), gamma, gae_lambda
    )
    alive = torch.cat([torch.ones_like(continues[:1]), continues[:-1]]).cumprod(dim=0).bool()  # [H, B]
    batch = {
        "deter": deter.float(),
        "hot": hot,
        "avail": rollout["avail"],
        "action": rollout["actions"],
        "old_log_prob": rollout["log_probs"].float(),
        "advantage": advantages,
        "return": returns,
    }
    return {key: value[alive] for key, value in batch.items()}
