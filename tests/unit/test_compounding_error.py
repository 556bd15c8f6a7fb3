"""The compounding-error metric c_h on hand examples and on a known model."""

import pytest
import torch

from lightning_mbmarl.world_models.compounding_error import accumulated_error, compounding_error, window_is_one_episode


def test_compounding_error_by_hand():
    predicted = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]])  # squared errors 1, 2, 4
    torch.testing.assert_close(compounding_error(predicted, target), torch.tensor([1.0, 1.5, 7.0 / 3.0]))
    torch.testing.assert_close(accumulated_error(predicted, target), torch.tensor([1.0, 3.0, 7.0]))


def test_known_model_with_constant_drift():
    """A model of s' = s + 1 that predicts s' = s + 1.1 is off by 0.1 i after i steps: c_h = 0.01 (h+1)(2h+1)/6."""
    real = torch.arange(0.0, 6.0).view(1, 6, 1)
    predicted = torch.zeros(1, 5, 1)
    state = real[:, 0]
    for i in range(5):
        state = state + 1.1
        predicted[:, i] = state
    expected = torch.tensor([0.01 * (h + 1) * (2 * h + 1) / 6 for h in range(1, 6)])
    torch.testing.assert_close(compounding_error(predicted, real[:, 1:]), expected)


def test_invalid_windows_are_excluded_and_detected():
    predicted, target = torch.zeros(2, 2, 1), torch.tensor([[[1.0], [1.0]], [[100.0], [100.0]]])
    assert compounding_error(predicted, target, torch.tensor([True, False])).tolist() == [1.0, 1.0]
    is_first = torch.tensor([[True, False, False], [False, True, False]])
    done = torch.tensor([[False, False, True], [False, False, False]])
    assert window_is_one_episode(is_first, done).tolist() == [True, False]
    with pytest.raises(ValueError, match="no valid"):
        compounding_error(predicted, target, torch.tensor([False, False]))


def test_curves_of_two_ranks_pool_into_the_curve_of_all_their_trajectories():
    """Rank 0 holds 1 valid trajectory (squared errors 1, 1), rank 1 holds 3 (errors 3, 3 each): the pooled c_h is
    the mean over all 4, (1 + 3 x 3) / 4 = 2.5 at every h, which is what one rank holding all four computes."""
    from lightning_mbmarl.callbacks.model_error import pool_over_ranks

    predicted = torch.zeros(4, 2, 1)
    target = torch.tensor([[[1.0], [1.0]]] + [[[3.0**0.5], [3.0**0.5]]] * 3)
    curves = torch.stack([compounding_error(predicted[:1], target[:1]), compounding_error(predicted[1:], target[1:])])
    curve, count = pool_over_ranks(curves, torch.tensor([1, 3]))
    torch.testing.assert_close(curve, torch.tensor([2.5, 2.5]))
    torch.testing.assert_close(curve, compounding_error(predicted, target))
    assert int(count) == 4
    empty, none = pool_over_ranks(torch.zeros(2, 2), torch.tensor([0, 0]))
    assert int(none) == 0 and empty.tolist() == [0.0, 0.0]
