"""World models: plain ``nn.Module`` s and pure loss functions, no Lightning."""

from lightning_mbmarl.world_models.ensemble import (
    EnsembleConfig,
    EnsemblePrediction,
    GaussianEnsemble,
    bootstrap_weights,
    ensemble_loss,
    select_elites,
    held_out_errors,
)
from lightning_mbmarl.world_models.model_env import EnsembleModelEnv, ModelStep
from lightning_mbmarl.world_models.termination import StateRangeTermination
from lightning_mbmarl.world_models.uncertainty import covariance_frobenius_norm, reward_variance

__all__ = [
    "EnsembleConfig",
    "EnsembleModelEnv",
    "EnsemblePrediction",
    "GaussianEnsemble",
    "ModelStep",
    "StateRangeTermination",
    "bootstrap_weights",
    "covariance_frobenius_norm",
    "ensemble_loss",
    "reward_variance",
    "select_elites",
    "held_out_errors",
]
