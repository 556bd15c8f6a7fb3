"""Linear layers on partly one-hot inputs given by their hot columns: the same as on the full input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.nn.batched import BatchedMLP
from lightning_mbmarl.nn.one_hot_input import HotRowSum, LatentLayout, OneHotInputMLP


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


def test_weight_gradient_by_hand() -> None:
    """Row 0 hot in column 1 and row 1 in column 2: each of those weight rows gets its row's gradient; then both rows
    hot in columns 1 and 2: each gets the sum of both. Column 0 (dense) gets nothing from the hot part."""
    weight = torch.arange(6.0).view(1, 3, 2).requires_grad_()
    hot = torch.tensor([[[1, 2], [2, 1]]])  # [G=1, M=2, J=2], distinct columns per row
    out = HotRowSum.apply(weight, hot[:, :, :1], 1)  # row 0 -> column 1, row 1 -> column 2
    torch.testing.assert_close(out, torch.tensor([[[2.0, 3.0], [4.0, 5.0]]]))
    grad = torch.tensor([[[1.0, 10.0], [100.0, 1000.0]]])
    out.backward(grad)
    torch.testing.assert_close(weight.grad, torch.tensor([[[0.0, 0.0], [1.0, 10.0], [100.0, 1000.0]]]))
    weight.grad = None
    HotRowSum.apply(weight, hot, 1).backward(grad)  # both rows read columns 1 and 2
    torch.testing.assert_close(weight.grad, torch.tensor([[[0.0, 0.0], [101.0, 1010.0], [101.0, 1010.0]]]))


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("d", [0, 5])
def test_weight_gradients_match_the_full_input(batched: bool, d: int) -> None:
    torch.manual_seed(0)
    groups = 3 if batched else 1
    dense, hot, full = one_hot_input(groups, 9, d, blocks=3, size=4)
    net = BatchedMLP(groups, d + 12, 2, hidden=(6,)).net if batched else nn.Sequential(nn.Linear(d + 12, 6), nn.ReLU())
    target = torch.randn(groups, 9, 2 if batched else 6)

    def gradients(output: torch.Tensor) -> list[torch.Tensor]:
        net.zero_grad()
        (output * target).sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    torch.testing.assert_close(gradients(OneHotInputMLP(net)(dense if d else None, hot)), gradients(net(full)))


def test_weight_gradient_under_bf16_autocast_is_close() -> None:
    """Under autocast the gradient's matmul runs in bf16, as the full input's linear layer's does."""
    torch.manual_seed(0)
    dense, hot, full = one_hot_input(1, 64, 5, blocks=4, size=8)
    net = nn.Sequential(nn.Linear(37, 16))
    target = torch.randn(1, 64, 16)
    grads = []
    for output in (lambda: OneHotInputMLP(net)(dense, hot), lambda: net(full)):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = output()
        (y.float() * target).sum().backward()
        grads.append(net[0].weight.grad.clone())
    assert grads[0].dtype == torch.float32
    torch.testing.assert_close(grads[0], grads[1], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layout_split_by_hand(dtype: torch.dtype) -> None:
    """``[deter (2), block 0 (class 2 of 3), block 1 (class 0 of 3)]`` -> dense ``[0.5, -1]``, hot columns 2 + 2 and
    2 + 3 + 0."""
    layout = LatentLayout(deter=2, categoricals=2, classes=3)
    features = torch.tensor([[0.5, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]], dtype=dtype)
    dense, hot = layout.split(features)
    torch.testing.assert_close(dense, features[:, :2])
    assert hot.tolist() == [[4, 5]]
    classes = torch.randint(0, 3, (50, 2))
    blocks = F.one_hot(classes, 3).to(dtype).flatten(-2)
    assert torch.equal(
        layout.split(torch.cat([torch.randn(50, 2, dtype=dtype), blocks], -1))[1], layout.hot_columns(classes)
    )
