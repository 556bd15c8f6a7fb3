"""The MOMA-PPO world model ``M`` (§3.1, Algorithm 1): one batched step of the elite ensemble.

``s', r, f, eps_r, eps_g ~ M(s, a)``:

* ``s'`` is sampled from the Gaussian of one elite member drawn uniformly per sample (the members' mean state
  would lack the structure of real states), then clipped to the dataset's bounding box;
* ``r`` is the elites' mean predicted reward, clipped to the dataset's reward range;
* the terminal flag is a majority vote of the elites (each votes terminal when its ``p_d > 0.5``), or, when a
  task's known termination rule is given, also whenever the sampled next state breaks it (checked before the
  clipping to the bounding box, which would hide a torso that leaves its healthy range);
* ``eps_r`` / ``eps_g`` are the elites' disagreement on the reward / on [next state, reward].

The uncertainties are returned raw and, separately, clamped to the threshold ``l_eps``: the rollout timeout
compares the RAW ``eps_g`` with ``l_eps`` (clamping first, as the official code does, means it never fires),
while the reward penalty uses the clamped values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lightning_mbmarl.world_models.ensemble import GaussianEnsemble
from lightning_mbmarl.world_models.termination import StateRangeTermination
from lightning_mbmarl.world_models.uncertainty import covariance_frobenius_norm, reward_variance


@dataclass
class ModelStep:
    """One model step of ``B`` samples.

    next_state:                 float [B, S] sampled next state, inside the state box
    reward:                     float [B]    elites' mean reward, inside the reward range
    terminal:                   bool  [B]    majority vote of the elites (or the known termination rule)
    reward_uncertainty:         float [B]    eps_r, raw
    uncertainty:                float [B]    eps_g, raw
    reward_uncertainty_clamped: float [B]    min(eps_r, l_eps)
    uncertainty_clamped:        float [B]    min(eps_g, l_eps)
    exceeded:                   bool  [B]    eps_g >= l_eps (raw): the rollout times out here
    """

    next_state: torch.Tensor
    reward: torch.Tensor
    terminal: torch.Tensor
    reward_uncertainty: torch.Tensor
    uncertainty: torch.Tensor
    reward_uncertainty_clamped: torch.Tensor
    uncertainty_clamped: torch.Tensor
    exceeded: torch.Tensor

    def penalized_reward(self, reward_coef: float, uncertainty_coef: float) -> torch.Tensor:
        """``r - lambda_r min(eps_r, l_eps) - lambda_g min(eps_g, l_eps)`` [B]."""
        return self.reward - reward_coef * self.reward_uncertainty_clamped - uncertainty_coef * self.uncertainty_clamped


class EnsembleModelEnv(nn.Module):
    """An ensemble plus the dataset's bounding box ([S] state bounds, scalar reward bounds), threshold l_eps and
    optionally the task's known termination rule."""

    state_low: torch.Tensor
    state_high: torch.Tensor
    reward_low: torch.Tensor
    reward_high: torch.Tensor

    def __init__(
        self,
        model: GaussianEnsemble,
        state_low: torch.Tensor,
        state_high: torch.Tensor,
        reward_low: float,
        reward_high: float,
        threshold: float,
        termination: StateRangeTermination | None = None,
    ) -> None:
        super().__init__()
        if state_low.shape != (model.state_dim,) or state_high.shape != (model.state_dim,):
            raise ValueError(
                f"state bounds must have shape ({model.state_dim},), got {tuple(state_low.shape)}, "
                f"{tuple(state_high.shape)}"
            )
        self.model = model
        self.threshold = float(threshold)
        self.termination = termination
        self.register_buffer("state_low", state_low.float().clone())
        self.register_buffer("state_high", state_high.float().clone())
        self.register_buffer("reward_low", torch.tensor(float(reward_low)))
        self.register_buffer("reward_high", torch.tensor(float(reward_high)))

    @torch.no_grad()
    def set_bounds(
        self, state_low: torch.Tensor, state_high: torch.Tensor, reward_low: torch.Tensor, reward_high: torch.Tensor
    ) -> None:
        """Replace the bounding box (``state_*`` [S], ``reward_*`` scalars), e.g. with a dataset's
        (``OfflineDataModule.bounds()``: states and next states, rewards); checkpointed with the module."""
        self.state_low.copy_(state_low)
        self.state_high.copy_(state_high)
        self.reward_low.copy_(reward_low)
        self.reward_high.copy_(reward_high)

    @torch.no_grad()
    def step(
        self,
        state: torch.Tensor,
        action_features: torch.Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> ModelStep:
        """One step from ``state`` [B, S] under ``action_features`` [B, N, A].

        ``generator`` drives the member choice and the Gaussian noise; ``deterministic`` uses the chosen member's
        mean instead of a sample.
        """
        state = state.float()
        pred = self.model(state, action_features.flatten(-2).float())
        elites = self.model.elite_indices
        state_mean = pred.next_state_mean[elites]  # [K, B, S]
        reward_mean = pred.reward_mean[elites]  # [K, B]
        K, B, S = state_mean.shape

        rng_device = generator.device if generator is not None else state.device
        member = torch.randint(K, (B,), generator=generator, device=rng_device).to(state.device)
        rows = torch.arange(B, device=state.device)
        next_state = state_mean[member, rows]
        if not deterministic:
            std = torch.exp(0.5 * pred.next_state_log_var[elites[member], rows])
            noise = torch.randn(B, S, generator=generator, device=rng_device).to(state.device)
            next_state = next_state + std * noise

        if pred.terminal_logit is None:
            terminal = torch.zeros(B, dtype=torch.bool, device=state.device)
        else:
            votes = (pred.terminal_logit[elites] > 0).sum(0)  # p_d > 0.5  <=>  logit > 0
            terminal = 2 * votes > K
        if self.termination is not None:
            terminal = terminal | self.termination(next_state)

        eps_r = reward_variance(reward_mean)
        eps_g = covariance_frobenius_norm(torch.cat([state_mean, reward_mean.unsqueeze(-1)], dim=-1))
        return ModelStep(
            next_state=torch.clamp(next_state, self.state_low, self.state_high),
            reward=torch.clamp(reward_mean.mean(0), self.reward_low, self.reward_high),
            terminal=terminal,
            reward_uncertainty=eps_r,
            uncertainty=eps_g,
            reward_uncertainty_clamped=eps_r.clamp(max=self.threshold),
            uncertainty_clamped=eps_g.clamp(max=self.threshold),
            exceeded=eps_g >= self.threshold,
        )
