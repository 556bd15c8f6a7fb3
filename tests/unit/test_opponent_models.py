"""AORPO's opponent models, their errors, and the adaptive opponent-wise rollout lengths n_j."""

import pytest
import torch

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.envs.icg import icg_spec
from lightning_mbmarl.world_models.opponent_models import OpponentModelConfig, OpponentModels, adaptive_rollout_lengths


def test_n_j_follows_the_paper_rule_by_hand():
    errors = torch.tensor([[0.0, 0.1, 0.2, 0.4], [0.3, 0.0, 0.3, 0.6], [0.05, 0.05, 0.0, 0.5], [0.2, 0.2, 0.2, 0.0]])
    # ego 0: min 0.1 -> floor(15 * 0.1/0.1), floor(15 * 0.1/0.2) = 7, floor(15 * 0.1/0.4) = 3
    # ego 2: min 0.05 -> 15, 15, floor(15 * 0.05/0.5) = 1
    expected = torch.tensor([[15, 15, 7, 3], [15, 15, 15, 7], [15, 15, 15, 1], [15, 15, 15, 15]])
    assert torch.equal(adaptive_rollout_lengths(errors, 15), expected)


def test_n_j_accuracy_ratio_option_and_perfect_models():
    errors = torch.tensor([[0.0, 0.1, 0.4], [0.0, 0.0, 0.0], [0.2, 0.2, 0.0]])
    # ego 0: accuracies 0.9, 0.6 -> 15, floor(15 * 0.6 / 0.9) = 10
    assert adaptive_rollout_lengths(errors, 15, "accuracy_ratio")[0].tolist() == [15, 15, 10]
    # ego 1: perfect models everywhere use the model for the whole rollout
    assert adaptive_rollout_lengths(errors, 15)[1].tolist() == [15, 15, 15]
    with pytest.raises(ValueError, match="error_ratio"):
        adaptive_rollout_lengths(errors, 15, "other")


def _constant_gaussian_models(spec: EnvSpec, mean: float) -> OpponentModels:
    models = OpponentModels(spec, OpponentModelConfig(hidden=(4,)))
    with torch.no_grad():
        for p in models.net.parameters():
            p.zero_()
        bias = models.net.output_layer.bias  # [P, 1, 2A]: mean pre-tanh, then std
        bias[..., : spec.action_dim] = torch.atanh(torch.tensor(mean))
    return models


def test_continuous_error_is_normalised_distance_to_real_actions():
    spec = EnvSpec("toy", 2, (3, 3), 6, "continuous", (2, 2), 10)
    models = _constant_gaussian_models(spec, mean=0.5)
    obs = torch.randn(4, 2, 3)
    actions = torch.tensor([[0.5, 0.5], [0.5, -0.5]]).expand(4, 2, 2)  # agent 0 matches, agent 1 off by 1 in one dim
    errors = models.errors(obs, torch.ones(4, 2, 2, dtype=torch.bool), actions)
    # ego 1 models agent 0: distance 0; ego 0 models agent 1: distance 1 / (2 sqrt 2)
    assert errors[1, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert errors[0, 1].item() == pytest.approx(1.0 / (2 * 2**0.5), rel=1e-5)
    assert errors[0, 0] == 0 and errors[1, 1] == 0


def test_discrete_error_is_probability_of_missing_the_real_action():
    spec = icg_spec()
    models = OpponentModels(spec, OpponentModelConfig(hidden=(4,)))
    with torch.no_grad():
        for p in models.net.parameters():
            p.zero_()
        models.net.output_layer.bias[..., 1] = torch.log(torch.tensor(3.0))  # P(right) = 3/4
    obs = torch.zeros(2, 2, 5)
    actions = torch.tensor([[1, 1], [0, 1]])  # agent 0 went right then left; agent 1 right twice
    errors = models.errors(obs, torch.ones(2, 2, 2, dtype=torch.bool), actions)
    assert errors[1, 0].item() == pytest.approx(1 - (0.75 + 0.25) / 2)
    assert errors[0, 1].item() == pytest.approx(0.25)


def test_opponent_models_learn_a_deterministic_opponent():
    torch.manual_seed(0)
    spec = icg_spec()
    models = OpponentModels(spec, OpponentModelConfig(hidden=(16,)))
    optimizer = torch.optim.Adam(models.parameters(), lr=1e-2)
    obs = torch.eye(5)[torch.randint(5, (128,))].unsqueeze(1).expand(128, 2, 5).contiguous()
    actions = (obs[:, :, 0] > 0).long()  # each agent goes right iff its first observation entry is set
    avail = torch.ones(128, 2, 2, dtype=torch.bool)
    for _ in range(200):
        loss = models.loss(obs, avail, actions)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert models.errors(obs, avail, actions).max() < 0.1
    assert torch.equal(models.predict(obs, avail, greedy=True)[:, 0, 1], actions[:, 1])
