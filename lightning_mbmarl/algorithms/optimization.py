"""Manual-optimisation steps shared by the methods: one optimizer step with a clear error on divergence, and the
MAPPO step (MOMA-PPO on model rollouts, MAMBA/MAG on imagined ones, online MAPPO on real ones) with the
rank-averaged entropy-coefficient update."""

from __future__ import annotations

import lightning as L
import torch

from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig, ppo_loss, update_entropy_alpha
from lightning_mbmarl.nn.fast_path import FastPath


def check_finite(loss: torch.Tensor, what: str, step: int) -> None:
    """Stop with an explanation when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"{what} is {loss.item()} at update {step}: training diverged. Lower the learning rates or the "
            "gradient-norm limit, check the data for extreme values (`python -m lightning_mbmarl dataset info FILE` "
            "for offline data), or use precision 32."
        )


def optimizer_step(module: L.LightningModule, optimizer, loss: torch.Tensor, max_grad_norm: float | None,
                   what: str = "loss", step: int = -1) -> None:
    """One manual step of ``optimizer`` on ``loss``, gradient norm clipped to ``max_grad_norm`` (None: no clipping)."""
    check_finite(loss, f"{type(module).__name__} {what}", step)
    optimizer.zero_grad()
    module.manual_backward(loss)
    if max_grad_norm is not None:
        module.clip_gradients(optimizer, gradient_clip_val=max_grad_norm, gradient_clip_algorithm="norm")
    optimizer.step()


def mappo_step(
    module: L.LightningModule,
    optimizer,
    actor_critic: MAPPOActorCritic,
    minibatch: dict[str, torch.Tensor],
    entropy_alpha: torch.Tensor,
    config: MAPPOConfig,
    step: int,
    fast: FastPath | None = None,
) -> dict[str, torch.Tensor]:
    """One MAPPO gradient step on ``minibatch``; moves ``entropy_alpha`` [N] in place; returns the loss terms.

    ``fast``: the method's fast path (bf16 autocast and compilation of the loss); None: float32, eager.
    Every rank must move alpha identically, so the entropy estimates are averaged over ranks first.
    """
    if fast is None:
        losses = ppo_loss(actor_critic, minibatch, entropy_alpha, config)
    else:
        with fast.autocast(module.device):
            losses = fast.compile("ppo_loss", ppo_loss)(actor_critic, minibatch, entropy_alpha, config)
    optimizer_step(module, optimizer, losses["loss"], config.max_grad_norm, "MAPPO loss", step)
    agent_entropy = module.trainer.strategy.reduce(losses["agent_entropy"], reduce_op="mean")
    entropy_alpha.copy_(update_entropy_alpha(entropy_alpha, agent_entropy, config.entropy_target, config.entropy_coef_lr))
    return losses
