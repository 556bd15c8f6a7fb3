"""World-model ensemble (MOMA-PPO §3.1): uncertainty estimators, the model step M, training and checkpoints."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lightning_mbmarl.nn.batched import BatchedLinear
from lightning_mbmarl.world_models import (
    EnsembleConfig,
    EnsembleModelEnv,
    GaussianEnsemble,
    ModelStep,
    StateRangeTermination,
    bootstrap_weights,
    covariance_frobenius_norm,
    ensemble_loss,
    reward_variance,
    select_elites,
    held_out_errors,
)

SMALL = dict(hidden=(16, 16))


def constant_ensemble(
    next_state: list[list[float]],
    reward: list[float],
    terminal_logit: list[float] | None = None,
    elites: int | None = None,
    log_var: float = -8.0,
) -> GaussianEnsemble:
    """An ensemble whose member ``m`` always predicts ``next_state[m]``, ``reward[m]``, ``terminal_logit[m]``.

    All weights and hidden biases are zero (silu(0) = 0), so each output is its output-layer bias.
    """
    E, S = len(next_state), len(next_state[0])
    config = EnsembleConfig(members=E, elites=elites or E, predict_delta=False, **SMALL)
    model = GaussianEnsemble(S, 4, config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, BatchedLinear):
                module.weight.zero_()
                module.bias.zero_()
        model.transition.output_layer.bias[:, 0, :S] = torch.tensor(next_state)
        model.transition.output_layer.bias[:, 0, S:] = log_var
        model.reward.output_layer.bias[:, 0, 0] = torch.tensor(reward)
        model.reward.output_layer.bias[:, 0, 1] = log_var
        model.reward.output_layer.bias[:, 0, 2] = torch.tensor(terminal_logit or [-1.0] * E)
    return model


def model_env(model: GaussianEnsemble, threshold: float = 1.0, box: float = 100.0) -> EnsembleModelEnv:
    S = model.state_dim
    return EnsembleModelEnv(model, torch.full((S,), -box), torch.full((S,), box), -box, box, threshold)


def step(env: EnsembleModelEnv, batch: int = 1, **kwargs: Any) -> ModelStep:
    return env.step(torch.zeros(batch, env.model.state_dim), torch.zeros(batch, 2, 2), **kwargs)


# --- uncertainty estimators ------------------------------------------------------------------------------------


def test_uncertainty_hand_example():
    # E=3 members predict x = [next state (1 dim), reward] for B=1 sample:
    #   [0, 0], [1, 2], [2, 1]   mean [1, 1]   centred [-1, -1], [0, 1], [1, 0]
    #   cov = ([[1, 1], [1, 1]] + [[0, 0], [0, 1]] + [[1, 0], [0, 0]]) / (3 - 1) = [[1, .5], [.5, 1]]
    #   eps_g = sqrt(1 + .25 + .25 + 1) = sqrt(2.5)
    #   eps_r = variance of rewards [0, 2, 1] = ((0-1)^2 + (2-1)^2 + (1-1)^2) / (3 - 1) = 1
    x = torch.tensor([[[0.0, 0.0]], [[1.0, 2.0]], [[2.0, 1.0]]])  # [E=3, B=1, D=2]
    assert covariance_frobenius_norm(x).tolist() == pytest.approx([math.sqrt(2.5)])
    assert reward_variance(x[..., 1]).tolist() == pytest.approx([1.0])
    assert covariance_frobenius_norm(x).dtype == torch.float32


def test_covariance_norm_matches_explicit_matrix():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 12, generator=g) * torch.linspace(0.1, 3.0, 12)  # [E, B, D]
    expected = torch.stack([torch.linalg.matrix_norm(torch.cov(x[:, b].T), "fro") for b in range(x.shape[1])])
    assert torch.allclose(covariance_frobenius_norm(x), expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(reward_variance(x[..., 0]), torch.stack([torch.cov(x[:, b, 0]) for b in range(7)]))


# --- the model step M --------------------------------------------------------------------------------------


def test_bounding_box_clipping_hand_example():
    # every member predicts next state [3, -1]; rewards 1, 2, 1.5 (mean 1.5)
    model = constant_ensemble([[3.0, -1.0]] * 3, [1.0, 2.0, 1.5])
    env = EnsembleModelEnv(model, torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0]), 0.0, 1.0, threshold=10.0)
    out = step(env, deterministic=True)
    assert out.next_state.tolist() == [[1.0, 0.0]]
    assert out.reward.tolist() == [1.0]
    # the uncertainties are computed on the raw (unclipped) predictions: rewards disagree, states do not
    assert out.reward_uncertainty.tolist() == pytest.approx([0.25])


def test_majority_vote_of_elites_only():
    logits = [5.0, 5.0, 5.0, 5.0, -5.0, -5.0, -5.0]  # 4 of 7 members vote terminal
    model = constant_ensemble([[0.0]] * 7, [0.0] * 7, logits, elites=5)
    env = model_env(model)
    model.set_elites(torch.tensor([0, 1, 2, 4, 5]))  # 3 of 5 elites vote terminal
    assert step(env).terminal.tolist() == [True]
    model.set_elites(torch.tensor([2, 3, 4, 5, 6]))  # 2 of 5 elites vote terminal (4 of all 7 would)
    assert step(env).terminal.tolist() == [False]
    assert step(env).terminal.dtype == torch.bool


def test_known_termination_rule_applies_before_the_bounding_box():
    # every member predicts next state [1.04, 0.5] and votes "not terminal"; the box tops state 0 at 1.0, so the
    # clipped state looks healthy, but the Ant rule (z = state 0 outside [0.2, 1.0]) sees the raw 1.04: terminal
    model = constant_ensemble([[1.04, 0.5]] * 3, [1.0] * 3)
    low, high = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    learned_only = EnsembleModelEnv(model, low, high, 0.0, 1.0, threshold=10.0)
    with_rule = EnsembleModelEnv(
        model,
        low,
        high,
        0.0,
        1.0,
        threshold=10.0,
        termination=StateRangeTermination.from_config([0, 0.2, 1.0], state_dim=2),
    )
    assert step(learned_only, deterministic=True).terminal.tolist() == [False]
    out = step(with_rule, deterministic=True)
    assert out.terminal.tolist() == [True]
    assert out.next_state.tolist() == [[1.0, 0.5]]  # still clipped for the rollout


def test_known_termination_rule_hand_example():
    rule = StateRangeTermination(index=1, low=0.2, high=1.0)
    next_state = torch.tensor([[9.0, 0.5], [0.0, 0.2], [0.0, 1.0], [0.0, 0.19], [0.0, 1.01], [float("nan"), 0.5]])
    assert rule(next_state).tolist() == [False, False, False, True, True, True]
    assert StateRangeTermination.from_config(None, state_dim=2) is None
    with pytest.raises(ValueError, match="outside the state"):
        StateRangeTermination.from_config([2, 0.2, 1.0], state_dim=2)
    with pytest.raises(ValueError, match=r"\[state index, low, high\]"):
        StateRangeTermination.from_config([0.2, 1.0], state_dim=2)
    with pytest.raises(ValueError, match="low < high"):
        StateRangeTermination(0, 1.0, 0.2)


def test_elite_selection_picks_lowest_errors():
    errors = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.2, 0.8, 0.05])
    assert select_elites(errors, 5).tolist() == [6, 1, 4, 3, 0]
    assert select_elites(errors, 5).dtype == torch.long
    # held_out_errors: member m predicts next state m and reward m, the target is 0: error m^2
    model = constant_ensemble([[float(m)] * 2 for m in range(4)], [float(m) for m in range(4)])
    batch = {
        "state": torch.zeros(3, 2),
        "action_features": torch.zeros(3, 2, 2),
        "next_state": torch.zeros(3, 2),
        "reward": torch.zeros(3),
    }
    assert held_out_errors(model, batch).tolist() == pytest.approx([0.0, 1.0, 4.0, 9.0])


def test_next_state_comes_from_one_random_elite_per_sample():
    model = constant_ensemble([[float(m)] for m in range(7)], [0.0] * 7, elites=5)
    model.set_elites(torch.tensor([1, 2, 3, 5, 6]))
    env = model_env(model, threshold=math.inf)
    out = step(env, batch=256, deterministic=True, generator=torch.Generator().manual_seed(3))
    picked = out.next_state[:, 0]
    assert set(picked.tolist()) == {1.0, 2.0, 3.0, 5.0, 6.0}  # every elite used, never members 0 or 4
    again = step(env, batch=256, deterministic=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again.next_state, out.next_state)
    other = step(env, batch=256, deterministic=True, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(other.next_state, out.next_state)
    # sampled (not deterministic): the chosen member's Gaussian, std exp(-8 / 2) ~ 0.018 here
    noisy = step(env, batch=256, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(noisy.next_state, out.next_state)
    assert (noisy.next_state - out.next_state).abs().max() < 0.2


def test_timeout_fires_when_members_disagree():
    threshold = 1.0
    disagree = model_env(constant_ensemble([[m, -m] for m in (0.0, 2.0, 4.0)], [0.0, 3.0, 6.0]), threshold)
    out = step(disagree, batch=4)
    assert (out.uncertainty > threshold).all() and (out.reward_uncertainty > threshold).all()  # raw values
    assert out.exceeded.all()
    assert (out.uncertainty_clamped <= threshold).all() and (out.reward_uncertainty_clamped <= threshold).all()
    assert out.penalized_reward(0.05, 0.1).tolist() == pytest.approx([3.0 - 0.05 - 0.1] * 4)

    agree = model_env(constant_ensemble([[1.0, 1.0]] * 3, [2.0] * 3), threshold)
    out = step(agree, batch=4)
    assert not out.exceeded.any()
    assert out.uncertainty.tolist() == pytest.approx([0.0] * 4)


# --- the ensemble networks -----------------------------------------------------------------------------------


def test_one_batched_pass_and_independent_members():
    config = EnsembleConfig(members=4, elites=2, **SMALL)
    model = GaussianEnsemble(3, 4, config)
    calls: list[tuple[int, ...]] = []
    for module in model.modules():
        if isinstance(module, BatchedLinear):
            module.register_forward_hook(lambda m, inputs, output: calls.append(tuple(inputs[0].shape)))
    state, action = torch.randn(5, 3), torch.randn(5, 4)
    before = model(state, action)
    assert len(calls) == 2 * (len(config.hidden) + 1)  # each layer of both networks runs exactly once
    assert all(shape[:2] == (4, 5) for shape in calls)  # ... on all members at once
    assert before.next_state_mean.shape == (4, 5, 3) and before.reward_mean.shape == (4, 5)

    with torch.no_grad():
        model.transition.net[0].weight[0] += 0.5
        model.reward.net[0].weight[0] += 0.5
    after = model(state, action)
    for name in ("next_state_mean", "next_state_log_var", "reward_mean", "reward_log_var", "terminal_logit"):
        old, new = getattr(before, name), getattr(after, name)
        assert not torch.allclose(old[0], new[0]), name
        assert torch.equal(old[1:], new[1:]), name


def test_member_axis_inputs_and_delta():
    model = GaussianEnsemble(3, 4, EnsembleConfig(members=3, elites=2, **SMALL))
    state, action = torch.randn(3, 5, 3), torch.randn(3, 5, 4)
    out = model(state, action)
    for e in range(3):
        alone = model(state[e], action[e])
        assert torch.allclose(out.next_state_mean[e], alone.next_state_mean[e], atol=1e-6)
    with torch.no_grad():
        model.transition.output_layer.weight.zero_()
        model.transition.output_layer.bias.zero_()
    assert torch.allclose(model(state, action).next_state_mean, state)  # predict_delta: s' = s + 0


def test_loss_shapes_and_per_member_weights():
    model = GaussianEnsemble(3, 4, EnsembleConfig(members=3, elites=2, **SMALL))
    batch = {
        "state": torch.randn(8, 3),
        "action_features": torch.randn(8, 2, 2),
        "next_state": torch.randn(8, 3),
        "reward": torch.randn(8),
        "terminal": torch.rand(8) > 0.5,
    }
    weights = torch.ones(3, 8)
    weights[0] = 0.0  # member 0 sees no data
    out = ensemble_loss(model, batch, weights)
    for key in ("transition_nll", "reward_nll", "termination_bce", "log_var_bound"):
        assert out[key].shape == (3,), key
    out["loss"].backward()
    first = model.transition.net[0].weight.grad
    assert torch.equal(first[0], torch.zeros_like(first[0])) and first[1].abs().sum() > 0
    with pytest.raises(ValueError, match="reward"):
        ensemble_loss(model, {**batch, "reward": batch["reward"].unsqueeze(-1)})


def test_bootstrap_weights_differ_between_members():
    w = bootstrap_weights(7, 1000, torch.Generator().manual_seed(0))
    assert w.shape == (7, 1000) and (w >= 0).all() and torch.equal(w, w.round())
    assert abs(w.mean().item() - 1.0) < 0.05
    assert all(not torch.equal(w[0], w[m]) for m in range(1, 7))


def icg_batch(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Tiny deterministic dynamics: the next state one-hot encodes the joint action, reward 1 when the two agents
    choose the same side, terminal when both choose side 1."""
    prev, actions = torch.randint(2, (n, 2), generator=g), torch.randint(2, (n, 2), generator=g)
    first = (torch.rand(n, 1, generator=g) < 0.1).float()
    state = torch.cat([F.one_hot(prev, 2).flatten(1).float() * (1 - first), first], dim=1)
    return {
        "state": state,
        "action_features": F.one_hot(actions, 2).float(),
        "next_state": torch.cat([F.one_hot(actions, 2).flatten(1).float(), torch.zeros(n, 1)], dim=1),
        "reward": (actions[:, 0] == actions[:, 1]).float(),
        "terminal": (actions == 1).all(1),
    }


@pytest.fixture
def one_thread():
    """Tiny matmuls run fastest on one thread; several threads on a busy shared CPU slow them tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ensemble_learns_tiny_dynamics(one_thread: None):
    # 300 Adam steps of a 7-member (64, 64) ensemble: about 2 s on one CPU core
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train, val = icg_batch(1024, g), icg_batch(256, g)
    model = GaussianEnsemble(5, 4, EnsembleConfig(members=7, elites=5, hidden=(64, 64)))
    model.fit_normalizer(train["state"], train["action_features"].flatten(1))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        idx = torch.randint(1024, (128,), generator=g)
        loss = ensemble_loss(model, {k: v[idx] for k, v in train.items()}, generator=g)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    errors = held_out_errors(model, val)
    assert errors.max() < 1e-2, errors
    model.set_elites(select_elites(errors, 5))
    states = torch.cat([train["state"], train["next_state"]])
    env = EnsembleModelEnv(model, torch.zeros(5), torch.zeros(5), 0.0, 0.0, 1.0)
    env.set_bounds(states.amin(0), states.amax(0), train["reward"].min(), train["reward"].max())
    assert env.state_low.tolist() == states.amin(0).tolist() and float(env.reward_high) == float(train["reward"].max())
    out = env.step(val["state"], val["action_features"], deterministic=True)
    assert torch.equal(out.terminal, val["terminal"])
    assert (out.next_state - val["next_state"]).abs().max() < 0.2
    assert (out.reward - val["reward"]).abs().max() < 0.2
    assert not out.exceeded.any()


def test_checkpoint_round_trip_keeps_normalizer_and_elites():
    config = EnsembleConfig(members=4, elites=2, **SMALL)
    model = GaussianEnsemble(3, 4, config)
    model.set_normalizer(torch.arange(7.0), torch.full((7,), 2.0))
    model.set_elites(torch.tensor([3, 1]))
    restored = GaussianEnsemble(3, 4, config)
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.input_mean, torch.arange(7.0))
    assert torch.equal(restored.input_std, torch.full((7,), 2.0))
    assert restored.elite_indices.tolist() == [3, 1]
    state, action = torch.randn(5, 3), torch.randn(5, 4)
    assert torch.equal(restored(state, action).next_state_mean, model(state, action).next_state_mean)


def test_ego_elites_are_chosen_per_ego_and_the_fitting_logs_their_errors():
    from lightning_mbmarl.nn.fast_path import FastPath, FastPathConfig
    from lightning_mbmarl.world_models.ego_ensembles import EgoEnsembles
    from lightning_mbmarl.world_models.trainer import EnsembleFitting

    dynamics = EgoEnsembles(2, 3, 4, EnsembleConfig(members=3, elites=2, hidden=(8,)))
    errors = torch.tensor([0.3, 0.1, 0.2, 0.9, 0.5, 0.7])  # ego 0: members 0-2, ego 1: members 3-5
    dynamics.held_out_errors = lambda batch: errors  # the example's errors, whatever the batch
    fitting = EnsembleFitting(dynamics, FastPath(FastPathConfig(bf16="off")), "dynamics")
    logs = fitting.evaluate({}, choose_elites=True, data="recent")
    # each ego keeps its two best: members 1, 2 and 4, 5; their mean error (0.1 + 0.2 + 0.5 + 0.7) / 4 = 0.375
    assert sorted(dynamics.ensemble.elite_indices.tolist()) == [1, 2, 4, 5]
    assert logs["dynamics/recent_error"] == pytest.approx(2.7 / 6)
    assert logs["dynamics/elite_recent_error"] == pytest.approx(0.375)
    assert set(fitting.evaluate({}, choose_elites=False)) == {"dynamics/held_out_error"}
