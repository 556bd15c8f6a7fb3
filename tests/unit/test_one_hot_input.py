"""Linear layers on partly one-hot inputs given by their hot columns: the same as on the full input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.nn.batched import BatchedMLP
from lightning_mbmarl.nn.one_hot_input import OneHotInputMLP


def one_hot_input(G: int, M: int, d: int, blocks: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dense [G, M, d], hot [G, M, blocks], full [G, M, d + blocks * size])``: one hot column per block."""
    dense = torch.randn(G, M, d)
    classes = torch.randint(0, size, (G, M, blocks))
    full = torch.cat([dense, F.one_hot(classes, size).float().flatten(-2)], dim=-1)
    return dense, d + size * torch.arange(blocks) + classes, full


@pytest.mark.parametrize("d", [0, 5])
def test_linear_first_layer(d: int) -> None:
    torch.manual_seed(0)
    dense, hot, full = one_hot_input(1, 7, d, blocks=3, size=4)
    net = nn.Sequential(nn.Linear(d + 12, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        torch.testing.assert_close(OneHotInputMLP(net)(dense if d else None, hot), net(full))


def test_batched_first_layer_per_group() -> None:
    torch.manual_seed(0)
    dense, hot, full = one_hot_input(3, 7, 5, blocks=3, size=4)
    net = BatchedMLP(3, 17, 2, hidden=(6,))
    with torch.no_grad():
        torch.testing.assert_close(OneHotInputMLP(net.net)(dense, hot), net(full))
