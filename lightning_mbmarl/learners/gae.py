"""Generalised advantage estimation with rollout timeouts (MOMA-PPO, Appendix A "General Advantage Estimation")."""

from __future__ import annotations

import torch


def timeout_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    masks: torch.Tensor,
    timeout_masks: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of ``T`` steps of ``B`` rollouts, all ``[T, B]`` (or ``[T, B, N]``, e.g. one
    reward per agent: every entry its own recursion), computed and returned in float32.

    Two masks stop the backward accumulation, for different reasons:

    * ``masks`` = 1 - terminal. A 0 marks an absorbing state (death, goal): nothing follows it, so
      ``next_values[t]`` is ignored and the return of step ``t`` is its reward alone.
    * ``timeout_masks`` (ζ) = 0 where a rollout was cut although the episode goes on: the time limit, the last
      step ``k - 1`` of a model rollout, or a world model too uncertain to continue. Step ``t + 1`` of the buffer
      then belongs to another rollout, so nothing is accumulated across the cut; the return bootstraps from
      ``next_values[t]`` (still valid, unless ``masks[t]`` is 0 too) and the advantage restarts from the one-step
      TD error.

    ``values[t]`` is V(s_t) and ``next_values[t]`` is V(s_{t+1}) of the true next state (before any auto-reset).
    The returns follow their own bootstrapped recursion exactly as written in the paper; they are not
    ``advantages + values``.
    """
    r, v, nv, m, z = (x.float() for x in (rewards, values, next_values, masks, timeout_masks))
    if not r.shape == v.shape == nv.shape == m.shape == z.shape:
        raise ValueError(
            "timeout_gae: rewards, values, next_values, masks and timeout_masks must share one [T, B, ...] shape, got "
            f"{[tuple(x.shape) for x in (r, v, nv, m, z)]}"
        )
    returns = torch.empty_like(r)
    advantages = torch.empty_like(r)
    running_return = nv[-1] * m[-1]  # past the last step: the value of the last next state
    running_advantage = torch.zeros_like(r[0])  # and no advantage beyond it
    for t in reversed(range(r.shape[0])):
        bootstrap = running_return * z[t] + (1.0 - z[t]) * nv[t] * m[t]
        running_return = r[t] + gamma * m[t] * bootstrap
        returns[t] = running_return
        delta = r[t] + gamma * nv[t] * m[t] - v[t]
        running_advantage = delta + gamma * lam * running_advantage * m[t] * z[t]
        advantages[t] = running_advantage
    return advantages, returns
