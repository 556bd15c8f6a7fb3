"""Timeout-aware GAE against a hand-worked example (MOMA-PPO Appendix A)."""

import pytest
import torch

from lightning_mbmarl.learners.gae import timeout_gae

GAMMA, LAM = 0.9, 0.5


def test_hand_worked_three_steps() -> None:
    # Two columns of T = 3 steps.
    # Column 0: step 0 is cut by a timeout mid-sequence, step 1 is terminal, step 2 is the final timeout.
    # Column 1: an uninterrupted rollout ending in the final timeout.
    rewards = torch.tensor([[1.0, 1.0], [2.0, 0.0], [3.0, 2.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 2.0], [1.5, 3.0]])
    next_values = torch.tensor([[2.5, 2.0], [4.0, 3.0], [6.0, 4.0]])
    masks = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    timeouts = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])

    # R_t = r_t + g m_t (R_{t+1} z_t + (1-z_t) nv_t m_t); d_t = r_t + g nv_t m_t - v_t; A_t = d_t + g l A_{t+1} m_t z_t
    # Column 0 (start: R = next_values[2] * masks[2] = 6, A = 0)
    # t=2: R = 3 + .9*1*(6*0 + 1*6*1) = 8.4     d = 3 + .9*6 - 1.5 = 6.9      A = 6.9
    # t=1: R = 2 + .9*0*(...)          = 2.0     d = 2 + 0 - 1.0     = 1.0      A = 1.0 + .45*6.9*0*1 = 1.0
    # t=0: R = 1 + .9*1*(2*0 + 1*2.5)  = 3.25    d = 1 + .9*2.5 - .5 = 2.75     A = 2.75 + .45*1.0*1*0 = 2.75
    #      (the timeout bootstraps from next_values[0] = 2.5, not from the next row's return 2.0)
    # Column 1 (start: R = 4, A = 0)
    # t=2: R = 2 + .9*(4*0 + 4)        = 5.6     d = 2 + .9*4 - 3    = 2.6      A = 2.6
    # t=1: R = 0 + .9*(5.6*1 + 0)      = 5.04    d = 0 + .9*3 - 2    = 0.7      A = 0.7 + .45*2.6  = 1.87
    # t=0: R = 1 + .9*5.04             = 5.536   d = 1 + .9*2 - 1    = 1.8      A = 1.8 + .45*1.87 = 2.6415
    expected_returns = torch.tensor([[3.25, 5.536], [2.0, 5.04], [8.4, 5.6]])
    expected_advantages = torch.tensor([[2.75, 2.6415], [1.0, 1.87], [6.9, 2.6]])

    advantages, returns = timeout_gae(rewards, values, next_values, masks, timeouts, GAMMA, LAM)
    torch.testing.assert_close(returns, expected_returns)
    torch.testing.assert_close(advantages, expected_advantages)


def test_float32_from_bf16_and_shape_check() -> None:
    x = torch.ones(4, 3, dtype=torch.bfloat16)
    advantages, returns = timeout_gae(x, x, x, x, x, 0.99, 0.95)
    assert advantages.dtype == returns.dtype == torch.float32
    assert advantages.shape == returns.shape == (4, 3)
    with pytest.raises(ValueError):
        timeout_gae(x, x, x, x, torch.ones(4, 2), 0.99, 0.95)
