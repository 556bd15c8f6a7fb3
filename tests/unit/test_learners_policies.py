"""Policy heads and their distributions over padded actions."""

import torch

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.policies import CategoricalPolicy, GaussianPolicy, action_bound_penalty
from lightning_mbmarl.nn.distributions import MaskedCategorical


def test_masked_categorical_respects_availability() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 5.0 * torch.randn(500, 3, 5, generator=g)
    avail = torch.rand(500, 3, 5, generator=g) < 0.4
    avail[..., 0] |= ~avail.any(-1)  # at least one available choice per agent
    logits.requires_grad_(True)
    dist = MaskedCategorical(logits, avail)

    for _ in range(5):
        sample = dist.sample(g)
        assert sample.shape == (500, 3) and sample.dtype == torch.int64
        assert avail.gather(-1, sample.unsqueeze(-1)).all()
    assert avail.gather(-1, dist.mode().unsqueeze(-1)).all()
    # The greedy action is the best available one.
    best = torch.where(avail, logits.detach(), -float("inf")).argmax(-1)
    assert torch.equal(dist.mode(), best)

    every_action = torch.arange(5).expand(500, 3, 5)
    log_probs = torch.stack([dist.log_prob(every_action[..., a]) for a in range(5)], -1)
    assert torch.isfinite(log_probs).all()
    torch.testing.assert_close(torch.where(avail, log_probs.exp(), 0.0).sum(-1), torch.ones(500, 3))
    entropy = dist.entropy()
    assert torch.isfinite(entropy).all() and (entropy >= -1e-6).all()
    (log_probs.sum() + entropy.sum()).backward()
    assert torch.isfinite(logits.grad).all()


def test_categorical_policy_pads_choices_of_smaller_agents() -> None:
    spec = EnvSpec("t", 2, (3, 3), 4, "discrete", (2, 4), 10)
    policy = CategoricalPolicy(spec, 3, hidden=(8,))
    dist = policy(torch.randn(200, 2, 3), torch.ones(200, 2, 4, dtype=torch.bool))
    assert (dist.sample()[:, 0] < 2).all()
    assert (dist.probs[:, 0, 2:] == 0).all()


def test_gaussian_policy_padding_and_float32() -> None:
    spec = EnvSpec("t", 2, (3, 3), 4, "continuous", (1, 3), 10)
    policy = GaussianPolicy(spec, 3, hidden=(8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist = policy(torch.randn(7, 2, 3))
        action = dist.sample()
        log_prob, entropy = dist.log_prob(action), dist.entropy()
    assert action.shape == (7, 2, 3) and (action[:, 0, 1:] == 0).all()
    assert log_prob.dtype == entropy.dtype == torch.float32 and log_prob.shape == entropy.shape == (7, 2)
    # Padded dimensions do not count: changing them leaves the log-prob unchanged.
    moved = action.clone()
    moved[:, 0, 1:] = 100.0
    torch.testing.assert_close(dist.log_prob(moved), log_prob)
    # Agent 0 has one real dimension: entropy = 0.5 log(2 pi e std^2).
    std0 = dist.std[:, 0, 0]
    torch.testing.assert_close(entropy[:, 0], 0.5 * torch.log(2 * torch.pi * torch.e * std0**2))


def test_action_bound_penalty_hand_example() -> None:
    mask = torch.tensor([[True, True, False], [True, True, True]])
    actions = torch.tensor([[[1.5, -0.5, 3.0], [-2.0, 0.2, 1.1]]])
    # agent 0: (1.5 - 1)^2 = 0.25 (3.0 is padding); agent 1: (-1 - -2)^2 + 0 + (1.1 - 1)^2 = 1.01
    torch.testing.assert_close(action_bound_penalty(actions, -1.0, 1.0, mask), torch.tensor([[0.25, 1.01]]))
    # without the mask the padded 3.0 counts: 0.25 + 4
    torch.testing.assert_close(action_bound_penalty(actions)[0, 0], torch.tensor(4.25))
