"""MAG: Models as Agents (Wu et al., AAAI 2023), MAMBA whose local models plan their predictions.

Everything is MAMBA's (:mod:`lightning_mbmarl.algorithms.mamba`) except two things, following Algorithm 1:

* with every world-model gradient step, the model-reward predictor R̂_m takes a gradient step on the same replay
  windows: the prior states the model predicted as inputs, the model's per-step per-agent errors as labels
  (:mod:`~lightning_mbmarl.world_models.model_reward`; line 5);
* imagination (and the model-error rollouts) step through :class:`~lightning_mbmarl.rollouts.planning.
  PlanningToPredict`: at each imagined step ``planning.candidates`` candidate trajectories of ``planning.horizon``
  steps (no further than the rollout's last step, with ``planning.within_rollout``) are rolled out together with
  the current policy acting, and each sample keeps the first prediction of its candidate with the lowest predicted
  accumulated model error (lines 8-13). ``mamba.imagination_horizon`` is the rollout length. With ``fast.compile``
  the look-ahead's step is compiled too.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_mbmarl.algorithms.base import as_config
from lightning_mbmarl.algorithms.mamba import MAMBA
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.world_models.model_reward import (
    ModelRewardConfig,
    ModelRewardPredictor,
    model_reward_loss,
    world_model_loss_and_sequence,
)
from lightning_mbmarl.rollouts.planning import PlanningConfig, PlanningToPredict, lookahead_step
from lightning_mbmarl.world_models.rssm_losses import TERMS


class MAG(MAMBA):
    """MAMBA with planning to predict (see the module docstring)."""

    def __init__(
        self,
        planning: PlanningConfig = PlanningConfig(),
        model_reward: ModelRewardConfig = ModelRewardConfig(),
        **mamba_options: Any,
    ) -> None:
        """``planning`` and ``model_reward``: MAG's own blocks; every other option is MAMBA's (:class:`MAMBA`, with its
        defaults), which the command line reads from MAMBA's signature."""
        super().__init__(**mamba_options)
        self.planning = as_config(planning, PlanningConfig)
        self.model_reward = ModelRewardPredictor(
            self.world_model.feature_dim, as_config(model_reward, ModelRewardConfig)
        )

    def configure_optimizers(self):
        return [
            *super().configure_optimizers(),
            self.fast.adam(
                self.model_reward.parameters(), self.trainer_precision, lr=self.model_reward.config.learning_rate
            ),
        ]

    def learn_world_model(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A world-model step and an R̂_m step on the same windows (labels: the errors before the model step)."""
        model_reward_optimizer = self.optimizers()[2]
        with self.fast.autocast(self.device):
            losses, observed = self.fast.compile("world_model_loss_and_sequence", world_model_loss_and_sequence)(
                self.world_model, batch
            )
        logs = self.world_model_step(losses, TERMS)
        with self.fast.autocast(self.device):
            fit = model_reward_loss(self.model_reward, observed.prior.features, losses["model_error"])
        optimizer_step(self, model_reward_optimizer, fit["loss"], self.model_reward.config.grad_clip)
        return {**logs, "model_reward/loss": fit["loss"].detach(), "model_reward/mean_error": fit["mean_error"]}

    def rollout_model(self, length: int) -> PlanningToPredict:  # type: ignore[override]
        advance = self.fast.compile("planning_lookahead_step", lookahead_step)
        return PlanningToPredict(
            self.world_model, self.model_reward, self.actor_critic.policy, self.planning, length, advance
        )
