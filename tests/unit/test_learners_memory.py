"""Memory module: padding is invisible, empty histories embed to zeros, histories roll forward."""

import pytest
import torch

from lightning_mbmarl.learners.memory import MemoryModule, empty_history, push_history

N, H, O, A, E = 3, 4, 5, 2, 16


@pytest.mark.parametrize("share", [False, True])
def test_padded_steps_are_ignored(share: bool) -> None:
    torch.manual_seed(0)
    memory = MemoryModule(N, O, A, H, E, share_parameters=share)
    obs, act = torch.randn(6, N, H, O), torch.randn(6, N, H, A)
    mask = torch.tensor([[False, False, True, True]] * 3 + [[True] * 4, [False, True, True, True], [False] * 4])
    out = memory(obs, act, mask)
    assert out.shape == (6, N, E)

    garbage_obs, garbage_act = obs.clone(), act.clone()
    padded = ~mask[:, None, :].expand(6, N, H)
    garbage_obs[padded] = 1e6 * torch.randn(int(padded.sum()), O)
    garbage_act[padded] = 1e6
    torch.testing.assert_close(memory(garbage_obs, garbage_act, mask), out)

    # A row with no real step gives a zero embedding; real rows do not.
    assert (out[5] == 0).all() and out[:5].abs().sum(-1).gt(0).all()


def test_empty_history_is_finite_with_finite_gradients() -> None:
    memory = MemoryModule(N, O, A, H, E)
    history = empty_history(2, N, H, O, A)
    out = memory(*history)
    assert torch.isfinite(out).all() and (out == 0).all()
    x = torch.randn(2, N, H, O, requires_grad=True)
    memory(x, history[1], torch.tensor([[False] * 4, [False, False, False, True]])).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in memory.parameters())


def test_agents_have_their_own_parameters() -> None:
    torch.manual_seed(0)
    memory = MemoryModule(N, O, A, H, E)
    obs = torch.randn(1, 1, H, O).expand(1, N, H, O)  # every agent sees the same history
    out = memory(obs, torch.zeros(1, N, H, A), torch.ones(1, H, dtype=torch.bool))
    assert not torch.allclose(out[0, 0], out[0, 1])
    shared = MemoryModule(N, O, A, H, E, share_parameters=True)
    out = shared(obs, torch.zeros(1, N, H, A), torch.ones(1, H, dtype=torch.bool))
    torch.testing.assert_close(out[0, 0], out[0, 1])


def test_push_history_rolls_forward() -> None:
    history_obs, history_action, history_mask = empty_history(2, N, H, O, A)
    for step in range(1, H + 2):
        history_obs, history_action, history_mask = push_history(
            history_obs, history_action, history_mask, torch.full((2, N, O), float(step)), torch.full((2, N, A), -step)
        )
    # After H + 1 pushes the oldest kept step is step 2, the newest step H + 1; every step is real.
    assert history_mask.all()
    assert history_obs[0, 0, :, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert history_action[1, 2, :, 1].tolist() == [-2.0, -3.0, -4.0, -5.0]
    once = push_history(*empty_history(1, N, H, O, A), torch.ones(1, N, O), torch.ones(1, N, A))
    assert once[2].tolist() == [[False, False, False, True]]
    disabled = push_history(*empty_history(1, N, 0, O, A), torch.ones(1, N, O), torch.ones(1, N, A))
    assert [h.shape[-2 if h.dim() > 2 else -1] for h in disabled] == [0, 0, 0]
