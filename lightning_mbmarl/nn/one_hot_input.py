"""Networks whose input is partly one-hot, evaluated without building the one-hots.

A linear layer on ``[dense, one-hot blocks]`` is a matmul on the dense columns plus, for each row, the sum of the
weight rows of its hot columns: a gather (``embedding_bag``) instead of a matmul with a mostly-zero input. The
result equals the layer on the dense input up to float summation order. MAG's planning look-ahead and MAMBA's latent
actor-critic use it for the networks that read latent features ``[deter, one-hot categorical samples]`` (``C`` hot
columns out of ``C * K``, :class:`LatentLayout`); gradients reach the weights through the gather.
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
    groups, inputs = weight.shape[:2]
    rows = hot + inputs * torch.arange(groups, device=hot.device).view(-1, 1, 1)  # into the stacked groups' rows
    out = F.embedding_bag(rows.flatten(0, 1), weight.flatten(0, 1), mode="sum").view(*hot.shape[:2], -1)
    if dense is not None:
        out = torch.baddbmm(out, dense, weight[:, : dense.shape[-1]])
    return out if bias is None else out + bias


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
        """``features [..., D + C*K]`` whose last ``C*K`` columns are one-hot blocks -> ``(dense [..., D], hot int64
        [..., C])``."""
        if features.shape[-1] != self.width:
            raise ValueError(
                f"LatentLayout.split: expected features [..., {self.width}] (deter {self.deter} + "
                f"{self.categoricals} x {self.classes} one-hot), got {tuple(features.shape)}"
            )
        blocks = features[..., self.deter :].unflatten(-1, (self.categoricals, self.classes))
        return features[..., : self.deter], self.hot_columns(blocks.argmax(dim=-1))
