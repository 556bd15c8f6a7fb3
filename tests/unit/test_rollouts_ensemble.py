"""Model rollouts of MOMA-PPO: adaptive timeouts really fire, and kept steps / GAE follow the masks."""

import torch

from lightning_mbmarl.envs.icg import icg_spec
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig
from lightning_mbmarl.rollouts.ensemble_rollouts import ensemble_rollouts
from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble
from lightning_mbmarl.world_models.model_env import EnsembleModelEnv

SPEC = icg_spec()


def _start(b: int) -> dict[str, torch.Tensor]:
    state = torch.zeros(b, SPEC.state_dim)
    state[:, -1] = 1.0  # first step of an episode
    observer = StateObserver(SPEC)
    return {
        "state": state,
        "obs": observer.observe(state),
        "avail": observer.available(state),
        "history_obs": torch.zeros(b, 2, 0, 5),
        "history_action": torch.zeros(b, 2, 0, 2),
        "history_mask": torch.zeros(b, 0, dtype=torch.bool),
    }


def _model_env(threshold: float, disagreement: float) -> EnsembleModelEnv:
    torch.manual_seed(0)
    ensemble = GaussianEnsemble(SPEC.state_dim, 4, EnsembleConfig(members=3, elites=3, hidden=(8,), termination=False))
    with torch.no_grad():  # members' output biases far apart -> large epistemic uncertainty
        ensemble.transition.output_layer.bias.copy_(
            disagreement * torch.arange(3.0).view(3, 1, 1).expand_as(ensemble.transition.output_layer.bias)
        )
    return EnsembleModelEnv(ensemble, torch.full((5,), -100.0), torch.full((5,), 100.0), -10.0, 10.0, threshold)


def _rollouts(model_env: EnsembleModelEnv, b: int = 16, k: int = 4):
    policy = MAPPOActorCritic(SPEC, SPEC.state_dim, MAPPOConfig(hidden=(8,), memory_length=0))
    return ensemble_rollouts(
        policy,
        model_env,
        StateObserver(SPEC),
        SPEC,
        _start(b),
        horizon=k,
        reward_uncertainty_coef=0.0,
        uncertainty_coef=0.0,
        gamma=0.9,
        gae_lambda=0.95,
    )


def test_uncertainty_timeout_fires_and_cuts_rollouts_after_one_step():
    transitions, stats = _rollouts(_model_env(threshold=1.0, disagreement=5.0))
    assert transitions["state"].shape[0] == 16  # every rollout kept only its first step
    assert stats["rollout_length"] == 1.0
    assert stats["uncertainty_timeout_rate"] == 1.0


def test_confident_model_runs_rollouts_to_full_length():
    transitions, stats = _rollouts(_model_env(threshold=1e9, disagreement=0.0), b=16, k=4)
    assert transitions["state"].shape[0] == 16 * 4
    assert stats["rollout_length"] == 4.0
    assert stats["uncertainty_timeout_rate"] == 0.0


def test_timed_out_steps_bootstrap_from_the_next_value():
    """A one-step horizon times every step out: return = r + gamma V(s') and advantage = return - V(s)
    (Appendix A's recursion with zeta = 0), so return - advantage must equal V(s) exactly."""
    torch.manual_seed(1)
    policy = MAPPOActorCritic(SPEC, SPEC.state_dim, MAPPOConfig(hidden=(8,), memory_length=0))
    transitions, _ = ensemble_rollouts(
        policy,
        _model_env(threshold=1e9, disagreement=0.0),
        StateObserver(SPEC),
        SPEC,
        _start(8),
        horizon=1,
        reward_uncertainty_coef=0.0,
        uncertainty_coef=0.0,
        gamma=0.9,
        gae_lambda=0.95,
    )
    value = policy.value(transitions["state"], transitions["obs"])
    torch.testing.assert_close(transitions["return"] - transitions["advantage"], value.detach(), atol=1e-5, rtol=0)
