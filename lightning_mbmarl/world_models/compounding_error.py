"""Compounding model error along real trajectories (AORPO §6.3 after Nagabandi et al. 2018; MAG Fig. 3).

For a real trajectory ``s_0 .. s_H`` and a model rollout ``ŝ_1 .. ŝ_H`` branched from ``s_0``, the error at
horizon ``h`` is ``c_h = (1/h) Σ_{i<=h} ||s_i - ŝ_i||²``.
"""

from __future__ import annotations

import torch


def compounding_error(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``c_h`` for ``h = 1..H`` averaged over valid trajectories: predicted, target [B, H, D]; valid bool [B] -> [H]."""
    squared = (predicted.float() - target.float()).pow(2).sum(-1)  # [B, H]
    horizons = torch.arange(1, squared.shape[1] + 1, device=squared.device, dtype=squared.dtype)
    per_trajectory = squared.cumsum(dim=1) / horizons  # [B, H]
    if valid is not None:
        if not valid.any():
            raise ValueError("compounding_error: no valid trajectory in the batch")
        per_trajectory = per_trajectory[valid]
    return per_trajectory.mean(0)


def accumulated_error(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """MAG's accumulated model error against rollout step: ``Σ_{i<=h} ||s_i - ŝ_i||²`` [H] (= h c_h)."""
    return accumulated_from_curve(compounding_error(predicted, target, valid))


def accumulated_from_curve(curve: torch.Tensor) -> torch.Tensor:
    """``c_h`` [H] -> the accumulated error ``h c_h`` [H]."""
    return curve * torch.arange(1, curve.shape[-1] + 1, device=curve.device, dtype=curve.dtype)


def window_is_one_episode(is_first: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """bool [B]: windows of steps ``0..H`` ([B, H+1] flags) that stay inside one episode — no episode starts
    after step 0 and none ends before the last step."""
    return ~is_first[:, 1:].any(dim=1) & ~done[:, :-1].any(dim=1)
