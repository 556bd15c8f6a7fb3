"""Manual-optimisation steps shared by the methods: one optimizer step with a clear error on divergence, and the
MAPPO step (MOMA-PPO on model rollouts, MAMBA/MAG on imagined ones, online MAPPO on real ones) with the
rank-averaged entropy-coefficient update."""

from __future__ import annotations

import lightning as L
import torch

from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig, ppo_loss, update_entropy_alpha
from lightning_mbmarl.nn.fast_path import FastPath


DIVERGED_HINT = (
    "Lower the learning rates or the gradient-norm limit, check the data for extreme values "
    "(`python -m lightning_mbmarl dataset info FILE` for offline data), or use precision 32."
)


def check_finite(loss: torch.Tensor, what: str, step: int) -> None:
    """Stop with an explanation when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} is {loss.item()} at update {step}: training diverged. {DIVERGED_HINT}")


class DeferredFiniteCheck:
    """The divergence check of losses on an accelerator, without a host-device synchronisation per step.

    :meth:`record` keeps, as device tensors, the first non-finite value of each loss and the update it came at;
    :meth:`raise_if_diverged` reads them (one synchronisation) and raises as :func:`check_finite` would. The methods
    call it at every logged step and before every checkpoint, so a diverged run stops within
    ``trainer.log_every_n_steps`` updates and never saves the diverged weights.
    """

    def __init__(self) -> None:
        self._first: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # what -> (update or -1, value)
        self._updates: dict[str, int] = {}

    def record(self, loss: torch.Tensor, what: str, step: int = -1) -> None:
        update = self._updates.get(what, 0) if step < 0 else step
        self._updates[what] = update + 1
        loss = loss.detach().float()
        none_yet = (torch.full((), -1, device=loss.device), torch.zeros((), device=loss.device))
        first, value = self._first.get(what, none_yet)
        new = ~torch.isfinite(loss) & (first < 0)
        self._first[what] = (torch.where(new, update, first), torch.where(new, loss, value))

    def raise_if_diverged(self) -> None:
        for what, (first, value) in self._first.items():
            if int(first) >= 0:
                raise FloatingPointError(
                    f"{what} is {value.item()} at update {int(first)}: training diverged. {DIVERGED_HINT}"
                )


def optimizer_step(
    module: L.LightningModule,
    optimizer,
    loss: torch.Tensor,
    max_grad_norm: float | None,
    what: str = "loss",
    step: int = -1,
) -> None:
    """One manual step of ``optimizer`` on ``loss``, gradient norm clipped to ``max_grad_norm`` (None: no clipping).

    A non-finite loss stops training: at once on the CPU (reading a CPU value costs nothing), at the next logged step
    or checkpoint on an accelerator (:class:`DeferredFiniteCheck`, the module's ``finite_check``).
    """
    what = f"{type(module).__name__} {what}"
    if loss.device.type == "cpu":
        check_finite(loss, what, step)
    else:
        module.finite_check.record(loss, what, step)
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
    entropy_alpha.copy_(
        update_entropy_alpha(entropy_alpha, agent_entropy, config.entropy_target, config.entropy_coef_lr)
    )
    return losses
