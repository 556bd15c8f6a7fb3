"""MAPPO as used by MOMA-PPO (§3.2, Appendix A.1/A.2): per-agent actors, QMIX-mixed critic, adaptive entropy bonus.

Batch keys read by :meth:`MAPPOActorCritic.evaluate_actions` and :func:`ppo_loss` (``B`` samples; flatten
``[T, B]`` imagined trajectories first):

=================  ===============================  ==========================================================
key                shape / dtype                    meaning
=================  ===============================  ==========================================================
``state``          float ``[B, S]``                 global state (mixer input)
``obs``            float ``[B, N, O]``              per-agent observations (zero-padded)
``avail``          bool ``[B, N, A]``               available actions (discrete; optional, default: all real)
``history_obs``    float ``[B, N, H, O]``           past observations (only when ``memory_length > 0``)
``history_action`` float ``[B, N, H, A]``           past encoded actions (``data.encoding.encode_actions``)
``history_mask``   bool ``[B, H]``                  True on real history steps
``action``         int64 ``[B, N]`` / ``[B, N, A]`` actions taken (continuous: unclipped samples)
``old_log_prob``   float ``[B, N]``                 per-agent log-probs under the policy that acted
``advantage``      float ``[B]``                    team advantage (:func:`~lightning_mbmarl.learners.gae.timeout_gae`)
                                                    (``[B, N]``: each agent's, from a per-agent critic)
``return``         float ``[B]``                    team return target of the mixed value (``[B, N]``: per agent)
=================  ===============================  ==========================================================

The entropy coefficient ``alpha`` (one per agent, ``[N]``, or a scalar) is state the caller keeps, starting at
``MAPPOConfig.initial_entropy_alpha`` and moved by :func:`update_entropy_alpha` with ``ppo_loss(...)["agent_entropy"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lightning_mbmarl.config_ranges import require_non_negative, require_positive
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.actor import Actor
from lightning_mbmarl.learners.agent_nets import AgentMLP
from lightning_mbmarl.learners.memory import history_from
from lightning_mbmarl.learners.policies import action_bound_penalty
from lightning_mbmarl.learners.value_mixer import ValueMixer


@dataclass
class MAPPOConfig:
    """Hyperparameters of MAPPO (defaults: MOMA-PPO Appendix A.2)."""

    hidden: tuple[int, ...] = (256, 256)  # hidden sizes of every MLP: actors, per-agent critics, mixer hypernetwork
    actor_lr: float = 5e-5  # Adam learning rate of the policy heads
    critic_lr: float = 5e-5  # Adam learning rate of the per-agent critics and the mixer
    memory_lr: float = 1e-4  # Adam learning rate of the memory module
    clip: float = 0.2  # PPO ratio clipping range
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.98  # GAE lambda
    epochs: int = 5  # passes over each batch of rollouts
    minibatch_size: int = 64  # samples per gradient step
    value_coef: float = 0.5  # weight of the value loss
    max_grad_norm: float = 1.0  # gradient-norm clipping threshold
    entropy_target: float = 0.0  # per-agent entropy the alpha controller aims at (paper: -6 Ant, -4 Reacher)
    entropy_coef_lr: float = 0.001  # step size of alpha += lr * (target - entropy)
    initial_entropy_alpha: float = 0.0  # starting entropy-bonus coefficient alpha
    action_penalty_coef: float = 1.0  # weight of the action-bound penalty (continuous actions)
    memory_length: int = 10  # history steps read by the memory module; 0 disables it
    memory_dim: int = 128  # memory embedding size e_h
    share_parameters: bool = False  # one network for all agents (agent one-hot appended) instead of one per agent
    monotonic_mixer: bool = True  # mix agent values with |w| as in QMIX
    normalize_advantages: bool = True  # standardise advantages within each minibatch
    min_std: float = 1e-3  # lower bound added to the Gaussian policy's softplus std

    def __post_init__(self) -> None:
        require_positive(self, "hidden", "actor_lr", "critic_lr", "epochs", "minibatch_size", "memory_dim")
        require_non_negative(self, "memory_length", "memory_lr")


class MAPPOActorCritic(nn.Module):
    """Per-agent actors and critics on ``[obs ⊕ memory embedding]`` plus a state-conditioned value mixer.

    The memory module belongs to the actor and is read (and trained) by the critics as well.
    """

    def __init__(self, spec: EnvSpec, state_dim: int, config: MAPPOConfig) -> None:
        super().__init__()
        self.spec, self.config = spec, config
        self.actor = Actor(
            spec, config.hidden, config.share_parameters, config.memory_length, config.memory_dim, config.min_std
        )
        self.critic = AgentMLP(spec.n_agents, self.actor.feature_dim, 1, config.hidden, config.share_parameters)
        self.mixer = ValueMixer(spec.n_agents, state_dim, config.hidden, config.monotonic_mixer)

    @property
    def action_mask(self) -> torch.Tensor:
        """bool ``[N, A]``: each agent's real choices / dimensions (what the action penalty reads)."""
        return self.actor.policy.action_mask

    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        history_obs: torch.Tensor | None = None,
        history_action: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`Actor.act`: ``(actions, log_probs [B, N])``, no gradients."""
        return self.actor.act(obs, avail, history_obs, history_action, history_mask, greedy, generator)

    def _mixed_value(self, state: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.mixer(self.critic(features).squeeze(-1), state)

    def value(
        self,
        state: torch.Tensor,
        obs: torch.Tensor,
        history_obs: torch.Tensor | None = None,
        history_action: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Team value ``V(s) = sum_i w_i(s) V_i(h_i) + b(s)``, float32 ``[B]``."""
        return self._mixed_value(state, self.actor.features(obs, history_obs, history_action, history_mask))

    def evaluate_actions(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_probs [B, N], entropy [B, N], values [B])``, float32, memory computed once for both heads.

        ``log_probs`` of ``batch["action"]`` feed the ratio and the A.1 surrogate entropy estimate; ``entropy``
        is the closed form (for logging).
        """
        features = self.actor.features(batch["obs"], *history_from(batch))
        dist = self.actor.policy(features, batch.get("avail"))
        return dist.log_prob(batch["action"]), dist.entropy(), self._mixed_value(batch["state"], features)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups with the actor, critic (critics + mixer) and memory learning rates."""
        c = self.config
        groups: list[dict[str, Any]] = [
            {"name": "actor", "params": list(self.actor.policy.parameters()), "lr": c.actor_lr},
            {"name": "critic", "params": [*self.critic.parameters(), *self.mixer.parameters()], "lr": c.critic_lr},
        ]
        if self.actor.memory is not None:
            groups.append({"name": "memory", "params": list(self.actor.memory.parameters()), "lr": c.memory_lr})
        return groups


def ppo_loss(
    model: MAPPOActorCritic,
    batch: Mapping[str, torch.Tensor],
    alpha: torch.Tensor | float,
    config: MAPPOConfig,
) -> dict[str, torch.Tensor]:
    """MAPPO loss on one minibatch (keys: module docstring); float32 throughout.

    * policy: per-agent clipped surrogate ``-min(ratio_i A, clip(ratio_i) A)`` with the team advantage ``A``
      ``[B]`` (or each agent's own ``A_i``, given ``[B, N]``, with values and returns ``[B, N]``);
    * value: ``value_coef * (V(s) - return)^2``;
    * entropy bonus (A.1): per-agent estimate ``H_i = min(E[-ratio_i log pi_i], E[-clip(ratio_i) log pi_i])``
      over the batch (actions drawn from the old policy), bonus ``-alpha_i H_i``;
    * action penalty (A.1, continuous only): ``coef * max(E[ratio_i err_i], E[clip(ratio_i) err_i])`` with
      ``err_i`` the squared excess of agent ``i``'s action beyond the bounds.

    Per-agent terms are averaged over agents. Returns ``loss`` (with gradients) and detached terms for logging:
    ``policy_loss, value_loss`` (unweighted MSE), ``entropy`` (mean of ``agent_entropy``), ``agent_entropy [N]``
    (input of :func:`update_entropy_alpha`), ``closed_form_entropy, entropy_bonus, action_penalty, approx_kl,
    clip_fraction``.
    """
    log_prob, closed_form_entropy, values = model.evaluate_actions(batch)
    advantage = batch["advantage"].float()
    if values.shape != batch["return"].shape or advantage.shape not in (log_prob.shape[:1], log_prob.shape[:2]):
        raise ValueError(
            f"ppo_loss: values {tuple(values.shape)} must match returns {tuple(batch['return'].shape)}, and advantages "
            f"{tuple(advantage.shape)} be the team's [B] or each agent's [B, N] of log-probs {tuple(log_prob.shape)}"
        )
    if config.normalize_advantages and advantage.numel() > 1:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    log_ratio = log_prob - batch["old_log_prob"].float()
    ratio = log_ratio.exp()  # [B, N]
    clipped_ratio = ratio.clamp(1.0 - config.clip, 1.0 + config.clip)

    if advantage.dim() == ratio.dim() - 1:
        advantage = advantage.unsqueeze(-1)  # the team's, for every agent
    policy_loss = -torch.min(ratio * advantage, clipped_ratio * advantage).mean()
    value_loss = (values - batch["return"].float()).square().mean()

    surrogate_entropy = -(ratio * log_prob).mean(dim=0)
    clipped_entropy = -(clipped_ratio * log_prob).mean(dim=0)
    agent_entropy = torch.min(surrogate_entropy, clipped_entropy)  # [N]
    alpha = torch.as_tensor(alpha, dtype=torch.float32, device=log_prob.device).detach()
    entropy_bonus = -(alpha * agent_entropy).mean()

    if model.spec.discrete:
        action_penalty = torch.zeros((), device=log_prob.device)
    else:
        error = action_bound_penalty(batch["action"], model.spec.action_low, model.spec.action_high, model.action_mask)
        action_penalty = torch.max((ratio * error).mean(dim=0), (clipped_ratio * error).mean(dim=0)).mean()

    loss = policy_loss + config.value_coef * value_loss + entropy_bonus + config.action_penalty_coef * action_penalty
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > config.clip).float().mean()
    return {
        "loss": loss,
        "policy_loss": policy_loss.detach(),
        "value_loss": value_loss.detach(),
        "entropy": agent_entropy.detach().mean(),
        "agent_entropy": agent_entropy.detach(),
        "closed_form_entropy": closed_form_entropy.detach().mean(),
        "entropy_bonus": entropy_bonus.detach(),
        "action_penalty": action_penalty.detach(),
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
    }


def update_entropy_alpha(alpha: torch.Tensor | float, entropy: torch.Tensor, target: float, lr: float) -> torch.Tensor:
    """A.1 entropy-bonus coefficient step ``alpha + lr * (target - entropy)``, clamped at 0 (``[N]`` or scalar)."""
    return (torch.as_tensor(alpha, dtype=torch.float32) + lr * (target - entropy.detach().float())).clamp_min(0.0)
