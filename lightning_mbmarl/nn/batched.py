"""Groups of independent networks evaluated in one batched matmul per layer.

A *group* is an ensemble member or an agent: ``G`` networks with the same architecture but their own
parameters. Inputs carry the group axis in front, ``[G, B, in]``; each layer is one ``torch.baddbmm``,
never a Python loop over groups.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


class BatchedLinear(nn.Module):
    """``G`` independent linear layers: ``[G, B, in] -> [G, B, out]``."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, 1, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same distribution as nn.Linear's default, drawn independently for every group.
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.groups or x.shape[-1] != self.in_features:
            raise ValueError(
                f"BatchedLinear expects input [groups={self.groups}, batch, {self.in_features}], got {tuple(x.shape)}"
            )
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_features={self.in_features}, out_features={self.out_features}"


class BatchedMLP(nn.Module):
    """``G`` independent MLPs ``[G, B, in] -> [G, B, out]`` with ``len(hidden)`` hidden layers."""

    def __init__(
        self,
        groups: int,
        in_features: int,
        out_features: int,
        hidden: tuple[int, ...] | list[int] = (256, 256),
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [BatchedLinear(groups, a, b), activation()]
        layers.append(BatchedLinear(groups, sizes[-1], out_features))
        self.net = nn.Sequential(*layers)
        self.groups = groups

    @property
    def output_layer(self) -> BatchedLinear:
        return self.net[-1]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
