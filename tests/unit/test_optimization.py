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


def test_deferred_check_names_the_first_non_finite_loss_and_its_update():
    """On an accelerator the check records without synchronising and raises when read (at logged steps and before
    checkpoints); here on CPU tensors, which behave the same."""
    from lightning_mbmarl.algorithms.optimization import DeferredFiniteCheck

    check = DeferredFiniteCheck()
    for update, value in enumerate([1.0, 2.0, math.inf, math.nan, 3.0]):
        check.record(torch.tensor(value), "MAMBA world-model loss")
        check.record(torch.tensor(0.5), "MAMBA MAPPO loss", step=100 + update)
        if update == 1:
            check.raise_if_diverged()  # nothing diverged yet
    with pytest.raises(FloatingPointError, match=r"MAMBA world-model loss is inf at update 2: training diverged"):
        check.raise_if_diverged()
