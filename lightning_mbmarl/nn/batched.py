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
    """``G`` independent linear layers: ``[G, B, in] -> [G, B, out]``.

    ``float32_output``: run in the weights' precision even inside an autocast region (a network's output layer;
    see :mod:`~lightning_mbmarl.nn.fast_path`).
    """

    def __init__(
        self, groups: int, in_features: int, out_features: int, bias: bool = True, float32_output: bool = False
    ) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.float32_output = float32_output
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
        if self.float32_output:
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self._apply_weights(x.to(self.weight.dtype))
        return self._apply_weights(x)

    def _apply_weights(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_features={self.in_features}, out_features={self.out_features}" + (
            ", float32_output=True" if self.float32_output else ""
        )


class BatchedMLP(nn.Module):
    """``G`` independent MLPs ``[G, B, in] -> [G, B, out]`` with ``len(hidden)`` hidden layers; the output layer
    runs in float32 inside autocast regions."""

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
        layers.append(BatchedLinear(groups, sizes[-1], out_features, float32_output=True))
        self.net = nn.Sequential(*layers)
        self.groups = groups

    @property
    def output_layer(self) -> BatchedLinear:
        return self.net[-1]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
