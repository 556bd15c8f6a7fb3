"""MOMA-PPO: model-based offline multi-agent PPO (Barde et al., AAMAS 2024, Algorithm 1).

Read top to bottom, one training step is one gradient step:

1. **World-model phase** (``world_model_steps`` steps): the centralised Gaussian ensemble (7 members) is fitted to
   dataset batches; at the end the 5 members with the lowest error on the held-out split become the
   elites used for rollouts, and the (untrained) team is evaluated: the learning curve's first point.
2. **Policy phase** (``policy_iterations`` rounds): each round samples ``rollout_starts`` dataset states with their
   agents' histories, rolls the current policies out for at most ``rollout_length`` steps in the model with the
   uncertainty-penalised reward and adaptive timeouts, computes timeout-aware GAE, then takes one MAPPO minibatch
   step per training step for ``epochs`` passes. The per-agent entropy coefficients follow A.1's controller.

Evaluation (greedy, real environment) is the base class's; the run stops after the last round's final evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import Capabilities, EvaluationConfig, MultiAgentAlgorithm, as_config
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.algorithms.optimization import mappo_step, optimizer_step
from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig
from lightning_mbmarl.learners.memory import History
from lightning_mbmarl.learners.minibatches import MinibatchQueue
from lightning_mbmarl.nn.fast_path import FastPath, FastPathConfig
from lightning_mbmarl.rollouts.ensemble_rollouts import ensemble_rollouts
from lightning_mbmarl.world_models.ensemble import (
    EnsembleConfig,
    GaussianEnsemble,
)
from lightning_mbmarl.world_models.model_env import EnsembleModelEnv
from lightning_mbmarl.world_models.termination import StateRangeTermination
from lightning_mbmarl.world_models.trainer import EnsembleFitting


@dataclass
class MOMAPPOConfig:
    """The schedule and the model-usage hyperparameters of MOMA-PPO (§3, Algorithm 1)."""

    world_model_steps: int = 20_000  # ensemble gradient steps before policy learning starts
    world_model_log_interval: int = 1_000  # log held-out errors every this many ensemble steps
    policy_iterations: int = 500  # rounds of (model rollouts, MAPPO epochs)
    rollout_length: int = 10  # k: maximum length of a model rollout
    rollout_starts: int = 200  # b: dataset start states per round (k * b ~ 2000 transitions, A.2)
    reward_uncertainty_coef: float = 0.05  # lambda_r: penalty weight of eps_r (released code's value)
    uncertainty_coef: float = 0.1  # lambda_g: penalty weight of eps_g (released code's value)
    uncertainty_threshold: float = 2.0  # l_eps: rollouts time out once eps_g reaches it (released code's value)
    # [state index, low, high]: the task's own termination rule, applied in the model besides the learned vote
    # (not in the paper; see world_models/termination.py). None: learned termination only, as in the paper.
    known_termination: tuple[int, float, float] | None = None


class MOMAPPO(MultiAgentAlgorithm):
    """MOMA-PPO on an :class:`~lightning_mbmarl.data.offline_datamodule.OfflineDataModule`."""

    capabilities = Capabilities(data="offline")

    progress_counters = ("policy_iterations",)

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        moma: MOMAPPOConfig = MOMAPPOConfig(),
        world_model: EnsembleConfig = EnsembleConfig(),
        mappo: MAPPOConfig = MAPPOConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
        fast: FastPathConfig = FastPathConfig(),
    ) -> None:
        super().__init__(env_spec, evaluation)
        self.save_config_hyperparameters()
        # The ensemble's and MAPPO's training steps; model rollouts stay float32 (their uncertainty measures
        # compare the members' predictions).
        self.fast = FastPath(as_config(fast, FastPathConfig))
        spec = self.env_spec
        moma, world_model = as_config(moma, MOMAPPOConfig), as_config(world_model, EnsembleConfig)
        mappo = as_config(mappo, MAPPOConfig)
        self.moma, self.mappo_config = moma, mappo
        self.observer = StateObserver(spec)
        ensemble = GaussianEnsemble(spec.state_dim, spec.n_agents * spec.action_dim, world_model)
        # The bounding box is a placeholder until the dataset's is copied in at the start of fit (then checkpointed).
        self.model_env = EnsembleModelEnv(
            ensemble,
            torch.zeros(spec.state_dim),
            torch.zeros(spec.state_dim),
            0.0,
            0.0,
            moma.uncertainty_threshold,
            StateRangeTermination.from_config(moma.known_termination, spec.state_dim),
        )
        self.fitting = EnsembleFitting(ensemble, self.fast, "world_model")
        self.actor_critic = MAPPOActorCritic(spec, spec.state_dim, mappo)
        self.register_buffer("entropy_alpha", torch.full((spec.n_agents,), mappo.initial_entropy_alpha))
        self.counters.update(world_model_steps=0, policy_iterations=0, policy_updates=0, model_transitions=0)
        self._queue: MinibatchQueue | None = None

    @property
    def ensemble(self) -> GaussianEnsemble:
        return self.model_env.model

    @property
    def history_length(self) -> int:
        return self.mappo_config.memory_length

    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        return self.actor_critic.act(obs, avail, *history, greedy=greedy)[0]

    def schedule_done(self) -> bool:
        return self.counters["policy_iterations"] >= self.moma.policy_iterations

    def progress(self) -> tuple[str, float, float]:
        if self.counters["world_model_steps"] < self.moma.world_model_steps:
            return "world-model steps", float(self.counters["world_model_steps"]), float(self.moma.world_model_steps)
        return "policy iterations", float(self.counters["policy_iterations"]), float(self.moma.policy_iterations)

    def evaluation_ready(self) -> bool:
        return self.counters["world_model_steps"] >= self.moma.world_model_steps

    def configure_optimizers(self):
        wm = self.ensemble.config
        return [
            self.fast.adam(
                self.ensemble.parameters(), self.trainer_precision, lr=wm.learning_rate, weight_decay=wm.weight_decay
            ),
            self.fast.adam(self.actor_critic.parameter_groups(), self.trainer_precision),
        ]

    # --------------------------------------------------------------------------------------------- set-up
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.counters["world_model_steps"] == 0:
            datamodule = self.trainer.datamodule
            self.model_env.set_bounds(**datamodule.bounds())
            reference = datamodule.held_out_batch()
            self.ensemble.fit_normalizer(
                reference["state"].to(self.device), reference["action_features"].flatten(-2).to(self.device)
            )

    # ------------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.counters["world_model_steps"] < self.moma.world_model_steps:
            values = self._world_model_step(batch)
        else:
            values = self._policy_step()
        self.log_training_progress(values)

    def _world_model_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One ensemble gradient step (and, at the last one, the choice of elites); returns the values to log."""
        optimizer = self.optimizers()[0]
        losses = self.fitting.loss(batch, self.device)
        optimizer_step(self, optimizer, losses["loss"], None, "world-model loss", self.counters["world_model_steps"])
        self.counters["world_model_steps"] += 1
        step, last = self.counters["world_model_steps"], self.moma.world_model_steps
        values = self.fitting.loss_logs(losses)
        if step % self.moma.world_model_log_interval == 0 or step == last:
            # the same split and synchronised weights on every rank: the same errors and elites, no communication
            held_out = {k: v.to(self.device) for k, v in self.trainer.datamodule.held_out_batch().items()}
            values.update(self.fitting.evaluate(held_out, choose_elites=step == last))
            if step == last:  # the learning curve's first point (policy iteration 0), as the world-model phase ends
                self._log_evaluation("eval", self.evaluation.episodes)
        return values

    def _policy_step(self) -> dict[str, torch.Tensor | float]:
        """One MAPPO minibatch step (after a new round of model rollouts when the last one is used up); returns the
        values to log."""
        values: dict[str, torch.Tensor | float] = {}
        if self._queue is None or self._queue.exhausted:
            self._queue, stats = self._generate_rollouts()
            values.update({f"rollouts/{k}": v for k, v in stats.items()})
        minibatch = {k: v.to(self.device) for k, v in self._queue.pop().items()}
        losses = mappo_step(
            self,
            self.optimizers()[1],
            self.actor_critic,
            minibatch,
            self.entropy_alpha,
            self.mappo_config,
            self.counters["policy_updates"],
            self.fast,
        )
        self.counters["policy_updates"] += 1
        values.update({f"mappo/{k}": v for k, v in losses.items() if v.dim() == 0})
        values["mappo/entropy_alpha"] = self.entropy_alpha.mean()
        if self._queue.exhausted:
            self.counters["policy_iterations"] += 1
            if self.schedule_done():
                self.finish()
        return values

    @torch.no_grad()
    def _generate_rollouts(self) -> tuple[MinibatchQueue, dict[str, float]]:
        """A round of model rollouts from dataset start states: its minibatch queue and rollout statistics."""
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
        start = self.trainer.datamodule.sample_start_states(self.moma.rollout_starts, generator)
        start = {k: v.to(self.device) for k, v in start.items()}
        transitions, stats = ensemble_rollouts(
            self.actor_critic,
            self.model_env,
            self.observer,
            self.env_spec,
            start,
            horizon=self.moma.rollout_length,
            reward_uncertainty_coef=self.moma.reward_uncertainty_coef,
            uncertainty_coef=self.moma.uncertainty_coef,
            gamma=self.mappo_config.gamma,
            gae_lambda=self.mappo_config.gae_lambda,
        )
        self.counters["model_transitions"] += int(transitions["state"].shape[0])
        return MinibatchQueue(transitions, self.mappo_config.minibatch_size, self.mappo_config.epochs), stats

    # ------------------------------------------------------------------------------------------ resuming
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._queue is not None and not self._queue.exhausted:
            checkpoint["moma_rollout_queue"] = self._queue.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "moma_rollout_queue" in checkpoint:
            self._queue = MinibatchQueue.from_state_dict(checkpoint["moma_rollout_queue"])
