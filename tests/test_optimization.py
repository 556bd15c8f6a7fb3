"""A diverged loss stops training with an error that names what diverged and when."""

import math

import pytest
import torch

from lightning_mbmarl.algorithms.optimization import check_finite


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_loss_is_named_with_its_update(value):
    with pytest.raises(FloatingPointError, match=r"world-model loss is (nan|inf) at update 17: training diverged"):
        check_finite(torch.tensor(value), "world-model loss", 17)


def test_finite_loss_passes():
    check_finite(torch.tensor(1.5), "MAPPO loss", 0)
