"""Networks whose input is partly one-hot, evaluated without building the one-hots.

A linear layer on ``[dense, one-hot blocks]`` is a matmul on the dense columns plus, for each row, the sum of the
weight rows of its hot columns: a gather (``embedding_bag``) instead of a matmul with a mostly-zero input. The
result equals the layer on the dense input up to float summation order. MAG's planning look-ahead and MAMBA's latent
actor-critic use it for the networks that read latent features ``[deter, one-hot categorical samples]`` (``C`` hot
columns out of ``C * K``, :class:`LatentLayout`); gradients reach the weights by one matmul with the one-hots
(:class:`HotRowSum`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.nn.batched import BatchedLinear


def one_hot_input_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, dense: torch.Tensor | None, hot: torch.Tensor
) -> torch.Tensor:
    """``G`` linear layers on inputs whose first ``d`` columns are ``dense`` and whose other columns are 0 except
    the ``hot`` ones, which are 1.

    weight ``[G, in, out]`` (contiguous), bias ``[G, 1, out]``; dense ``[G, M, d]`` (None: ``d = 0``); hot int64
    ``[G, M, J]``: input columns (``>= d``) holding a 1 in each row. Returns ``[G, M, out]``, what
    ``baddbmm(bias, input, weight)`` gives on the full input.
    """
    first_hot = 0 if dense is None else dense.shape[-1]
    out = HotRowSum.apply(weight, hot, first_hot)
    if dense is not None:
        out = torch.baddbmm(out, dense, weight[:, :first_hot])
    return out if bias is None else out + bias


class HotRowSum(torch.autograd.Function):
    """``weight [G, in, out], hot int64 [G, M, J] -> [G, M, out]``: each row's sum of the weight rows its hot columns
    select (distinct columns per row, each ``>= first_hot``).

    Forward: a gather (``embedding_bag``). Backward: the weight's gradient as ``one_hot^T @ grad`` over the columns
    from ``first_hot`` on, one batched matmul. ``embedding_bag``'s own backward sorts the ``M * J`` indices and sums
    segments: measured on this package's CPU (one thread, 5000 rows, 16 hot of 256 columns, 128 outputs, the
    SMAX CPU protocol's latent critic and policy) 14 ms against 4.8 ms for the matmul in float32 and 3.6 ms in
    bf16; at MAMBA's released sizes (32 of 1024 columns, 256 outputs, 10,000 rows) 64 ms against 70 ms in float32
    and 50 ms in bf16. Under autocast the matmul runs in the autocast dtype, as a linear layer's weight gradient does.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, hot: torch.Tensor, first_hot: int) -> torch.Tensor:
        groups, inputs = weight.shape[:2]
        rows = hot + inputs * torch.arange(groups, device=hot.device).view(-1, 1, 1)  # into the stacked groups' rows
        out = F.embedding_bag(rows.flatten(0, 1), weight.flatten(0, 1), mode="sum").view(*hot.shape[:2], -1)
        device = weight.device.type
        ctx.matmul_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        ctx.weight_shape, ctx.weight_dtype, ctx.first_hot = weight.shape, weight.dtype, first_hot
        ctx.save_for_backward(hot)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (hot,) = ctx.saved_tensors
        groups, inputs, outputs = ctx.weight_shape
        first, dtype = ctx.first_hot, ctx.matmul_dtype
        one_hot = torch.zeros(*hot.shape[:2], inputs - first, dtype=dtype, device=hot.device)
        one_hot.scatter_(-1, hot - first, 1.0)
        hot_rows = torch.bmm(one_hot.transpose(1, 2), grad.to(dtype)).to(ctx.weight_dtype)  # [G, in - first, out]
        dense_rows = hot_rows.new_zeros(groups, first, outputs)  # the dense columns' rows get nothing from here
        return torch.cat([dense_rows, hot_rows], dim=1), None, None


class OneHotInputMLP:
    """A ``nn.Sequential`` whose first module is an ``nn.Linear`` or a :class:`BatchedLinear`, evaluated on
    ``(dense, hot)`` inputs (see :func:`one_hot_input_linear`): ``[G, M, d] and [G, M, J] -> [G, M, out]``
    (``G = 1`` for ``nn.Linear``).

    Holds the first layer's weights as ``[G, in, out]`` (a transposed copy for ``nn.Linear``): a snapshot, for use
    within one no-grad pass.
    """

    def __init__(self, net: nn.Sequential) -> None:
        first = net[0]
        if isinstance(first, BatchedLinear):
            self.weight, self.bias = first.weight, first.bias
        elif isinstance(first, nn.Linear):
            self.weight = first.weight.t().contiguous().unsqueeze(0)
            self.bias = None if first.bias is None else first.bias.view(1, 1, -1)
        else:
            raise TypeError(f"OneHotInputMLP: the first module must be a linear layer, got {type(first).__name__}")
        self.rest = net[1:]

    def __call__(self, dense: torch.Tensor | None, hot: torch.Tensor) -> torch.Tensor:
        return self.rest(one_hot_input_linear(self.weight, self.bias, dense, hot))


@dataclass(frozen=True)
class LatentLayout:
    """Where the parts of latent features ``[deter, C one-hot blocks of K classes]`` lie (width ``D + C*K``), so
    networks reading them can take the one-hot part as hot columns (:meth:`split`) instead of ``C*K`` mostly-zero
    inputs."""

    deter: int  # D: dense columns first
    categoricals: int  # C: one-hot blocks after them
    classes: int  # K: columns of each block

    @property
    def width(self) -> int:
        return self.deter + self.categoricals * self.classes

    def hot_columns(self, classes: torch.Tensor) -> torch.Tensor:
        """Columns holding a 1 for sampled classes int64 ``[..., C]``: int64 ``[..., C]``."""
        offsets = self.deter + self.classes * torch.arange(self.categoricals, device=classes.device)
        return offsets + classes

    def split(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features [..., D + C*K]`` whose last ``C*K`` columns are one-hot blocks (exactly 0 and 1, as sampled
        latents' forward values are) -> ``(dense [..., D], hot int64 [..., C])``."""
        if features.shape[-1] != self.width:
            raise ValueError(
                f"LatentLayout.split: expected features [..., {self.width}] (deter {self.deter} + "
                f"{self.categoricals} x {self.classes} one-hot), got {tuple(features.shape)}"
            )
        blocks = features[..., self.deter :].unflatten(-1, (self.categoricals, self.classes))
        # each block's class as its dot product with 0 .. K-1, exact for one-hot blocks (small integers in any float
        # type): a quarter of argmax's time on this package's CPU (4.3 against 17.8 ms for 4800 x 5 x 16 blocks of 16)
        positions = torch.arange(self.classes, device=features.device, dtype=features.dtype)
        return features[..., : self.deter], self.hot_columns(torch.matmul(blocks, positions).long())
