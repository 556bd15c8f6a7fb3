"""AORPO: Adaptive Opponent-wise Rollout Policy Optimization (Zhang et al., IJCAI 2021, Algorithm 1), and AORDPG,
the same model usage on MADDPG.

Read top to bottom, one training step (after the warm-up of uniform random steps) is:

1. act in the real environment (every agent conditioned on its opponent models' predictions, Eq. 4) until this
   rank has taken ``warmup + (updates + 1) * env_steps_per_update`` environment steps;
2. every ``model_train_interval`` environment steps: fit each ego's bootstrap ensemble of Gaussian dynamics models
   on real data and keep each ego's elite members; every ``opponent_train_interval`` steps (default: with the
   dynamics): fit each ego's opponent models on real data, measure their errors ε^i_j on the newest real data and
   set ``n^i_j = floor(k min_j' ε^i_j' / ε^i_j)`` (``rollout_length_rule``);
3. every ``rollout_interval`` environment steps: adaptive opponent-wise k-step rollouts from real states into the
   model store (opponent ``j`` from ego ``i``'s model for ``n^i_j`` steps, then the real agent ``j``, each such query
   counted as an agent interaction);
4. one policy gradient step (MASAC or MADDPG) on a batch mixing ``real_ratio`` real transitions (for every agent)
   and model transitions (each for the agent whose ego rollout made it).

Counters: ``env_steps`` (dynamics interactions), ``agent_interactions`` (opponent sample complexity: real opponent
actions observed in the environment, N (N - 1) per team step, plus every communication during rollouts),
``model_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig, as_config
from lightning_mbmarl.algorithms.maddpg import MADDPG
from lightning_mbmarl.algorithms.masac import MASAC
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.algorithms.online import OnlineConfig
from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.data.online_datamodule import OnlineDataModule
from lightning_mbmarl.data.replay_buffer import TransitionStore
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.learners.maddpg import MADDPGConfig
from lightning_mbmarl.learners.masac import MASACConfig
from lightning_mbmarl.learners.memory import History
from lightning_mbmarl.nn.fast_path import FastPath, FastPathConfig
from lightning_mbmarl.rollouts.opponent_wise_rollouts import opponent_wise_rollouts
from lightning_mbmarl.world_models.ego_ensembles import EgoEnsembles
from lightning_mbmarl.world_models.ensemble import EnsembleConfig
from lightning_mbmarl.world_models.opponent_models import (
    OpponentModelConfig,
    OpponentModels,
    adaptive_rollout_lengths,
    ego_opponent_features,
)
from lightning_mbmarl.world_models.trainer import EnsembleFitting

OPPONENT_ROLLOUTS = ("adaptive", "models", "real")


@dataclass
class AORPOConfig:
    """How AORPO learns and uses its models (Algorithm 1)."""

    model_train_interval: int = 250  # environment steps (this rank) between fits of the dynamics models
    model_train_steps: int = 200  # gradient steps of the ego ensembles per fit
    opponent_train_steps: int = 100  # gradient steps of the opponent models per fit
    opponent_train_interval: int | None = None  # environment steps between opponent-model fits; None: with the dynamics
    opponent_train_window: int | None = None  # newest steps of each environment copy opponent fits sample; None: all
    model_batch_size: int = 256  # real transitions per model gradient step
    error_window: int = 100  # newest steps of each environment copy on which the opponent-model errors are measured
    rollout_interval: int = 50  # environment steps (this rank) between rounds of model rollouts
    rollout_starts: int = 256  # real start states per round (every ego branches from each)
    rollout_length: int = 5  # k: model-rollout length at the end of the ramp
    rollout_length_start: int = 1  # k at the start of the ramp
    rollout_ramp_env_steps: int = 5_000  # environment steps (this rank) over which k grows to rollout_length
    model_store_capacity: int = 200_000  # model transitions kept (all egos together)
    real_ratio: float = 0.5  # share of real transitions in each policy batch; each agent also learns from the model
    # transitions of its own ego only, so its real share is r / (r + (1 - r) / N): N = 3, r = 0.25 is the released 50/50
    opponent_rollout: str = "adaptive"  # adaptive (paper) | models (never query real opponents) | real (always)
    rollout_length_rule: str = "error_ratio"  # n_j rule: error_ratio (paper) | accuracy_ratio (released code)


class OpponentWiseModelUsage:
    """The model-based part shared by AORPO (on MASAC) and AORDPG (on MADDPG); mixed in before the learner class,
    which provides ``agents`` (opponent-conditioned actors), ``learn_from`` and the first optimizers."""

    opponent_conditioning = True
    progress_counters = ("env_steps", "agent_interactions")

    def _init_model_usage(
        self, aorpo: AORPOConfig, world_model: EnsembleConfig, opponent_model: OpponentModelConfig, fast: FastPathConfig
    ) -> None:
        self.aorpo = as_config(aorpo, AORPOConfig)
        self.fast = FastPath(as_config(fast, FastPathConfig))  # the ego ensembles' training steps
        if self.aorpo.opponent_rollout not in OPPONENT_ROLLOUTS:
            raise ValueError(
                f"aorpo.opponent_rollout must be one of {OPPONENT_ROLLOUTS}, got {self.aorpo.opponent_rollout!r}"
            )
        if not 0.0 <= self.aorpo.real_ratio <= 1.0:
            raise ValueError(f"aorpo.real_ratio must be in [0, 1], got {self.aorpo.real_ratio}")
        spec = self.env_spec
        self.observer = StateObserver(spec)
        self.dynamics = EgoEnsembles(
            spec.n_agents, spec.state_dim, spec.n_agents * spec.action_dim, as_config(world_model, EnsembleConfig)
        )
        self.dynamics_fitting = EnsembleFitting(self.dynamics, self.fast, "dynamics")
        self.opponent_models = OpponentModels(spec, as_config(opponent_model, OpponentModelConfig))
        self.register_buffer("opponent_errors", torch.zeros(spec.n_agents, spec.n_agents))
        self.register_buffer("opponent_model_steps", torch.zeros(spec.n_agents, spec.n_agents, dtype=torch.long))
        self.model_store = TransitionStore(self.aorpo.model_store_capacity)
        self.counters.update(
            agent_interactions=0,
            communications=0,
            model_steps=0,
            model_fits=0,
            last_model_fit=-1,
            last_opponent_fit=-1,
            last_rollout=-1,
        )

    def configure_optimizers(self):
        """The learner's optimizers (MASAC's or MADDPG's, next in the method resolution order), then the dynamics'
        and the opponent models'."""
        return [
            *super().configure_optimizers(),
            self.fast.adam(
                self.dynamics.parameters(),
                self.trainer_precision,
                lr=self.dynamics.ensemble.config.learning_rate,
                weight_decay=self.dynamics.ensemble.config.weight_decay,
            ),
            torch.optim.Adam(self.opponent_models.parameters(), lr=self.opponent_models.config.learning_rate),
        ]

    # ------------------------------------------------------------------------------------------------ acting
    @torch.no_grad()
    def conditioning(self, obs: torch.Tensor, avail: torch.Tensor, greedy: bool) -> torch.Tensor:
        """Each agent's predictions of the others' actions ``[B, N, (N-1) A]`` from its opponent models (Eq. 4)."""
        predicted = self.opponent_models.predict(obs, avail, greedy=greedy)
        return ego_opponent_features(encode_actions(predicted, self.env_spec))

    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        return self.agents.act(obs, avail, self.conditioning(obs, avail, greedy), greedy=greedy)

    # ----------------------------------------------------------------------------------------------- updates
    def update(self, datamodule: OnlineDataModule) -> dict[str, Any]:
        counters, config, spec = self.counters, self.aorpo, self.env_spec
        counters["agent_interactions"] = (
            counters["env_steps"] * spec.n_agents * (spec.n_agents - 1) + counters["communications"]
        )
        logs: dict[str, Any] = {}
        steps = datamodule.env_steps
        due = lambda last, interval: last < 0 or steps - last >= interval  # noqa: E731
        dynamics = due(counters["last_model_fit"], config.model_train_interval)
        opponents = due(counters["last_opponent_fit"], config.opponent_train_interval or config.model_train_interval)
        if dynamics or opponents:
            logs.update(self._fit_models(datamodule, dynamics, opponents))
            counters["last_model_fit"] = steps if dynamics else counters["last_model_fit"]
            counters["last_opponent_fit"] = steps if opponents else counters["last_opponent_fit"]
        if counters["last_rollout"] < 0 or steps - counters["last_rollout"] >= config.rollout_interval:
            logs.update(self._generate_rollouts(datamodule))
            counters["last_rollout"] = steps
        logs.update(self.learn_from(self._policy_batch(datamodule)))
        logs["aorpo/agent_interactions"] = float(counters["agent_interactions"])
        return logs

    def _fit_models(self, datamodule: OnlineDataModule, dynamics: bool, opponents: bool) -> dict[str, Any]:
        """Fit the ego ensembles (and pick their elites) if ``dynamics``, the opponent models (and measure their
        errors ε^i_j) if ``opponents``; both judged on one sample of the newest real data."""
        dynamics_optimizer, opponent_optimizer = self.optimizers()[-2:]
        device, config, logs = self.device, self.aorpo, {}
        to_device = lambda batch: {k: v.to(device) for k, v in batch.items()}  # noqa: E731
        if dynamics and self.counters["model_fits"] == 0:
            reference = to_device(datamodule.sample(4096))
            self.dynamics.ensemble.fit_normalizer(reference["state"], reference["action_features"].flatten(-2))
        for _ in range(config.model_train_steps if dynamics else 0):
            batch = to_device(datamodule.sample(config.model_batch_size))
            losses = self.dynamics_fitting.loss(batch, device)
            optimizer_step(self, dynamics_optimizer, losses["loss"], None)
            logs.update(self.dynamics_fitting.loss_logs(losses))
        for _ in range(config.opponent_train_steps if opponents else 0):
            batch = to_device(datamodule.sample(config.model_batch_size, recent=config.opponent_train_window))
            opponent = self.opponent_models.loss(batch["obs"], batch["avail"], batch["action"])
            optimizer_step(self, opponent_optimizer, opponent["loss"], None)
            logs["aorpo/opponent_nll"] = opponent["nll"]
        recent = to_device(datamodule.sample(1024, recent=config.error_window))
        if dynamics:
            logs.update(self.dynamics_fitting.evaluate(recent, choose_elites=True, data="recent"))  # may be fitted data
            self.counters["model_fits"] += 1
        if opponents:
            self.opponent_errors.copy_(self.opponent_models.errors(recent["obs"], recent["avail"], recent["action"]))
            off_diagonal = ~torch.eye(self.env_spec.n_agents, dtype=torch.bool, device=device)
            logs["aorpo/opponent_error"] = self.opponent_errors[off_diagonal].mean()
        return logs

    def _rollout_length(self, env_steps: int) -> int:
        config = self.aorpo
        progress = min(1.0, env_steps / max(1, config.rollout_ramp_env_steps))
        return int(
            round(config.rollout_length_start + progress * (config.rollout_length - config.rollout_length_start))
        )

    def _generate_rollouts(self, datamodule: OnlineDataModule) -> dict[str, Any]:
        horizon = self._rollout_length(datamodule.env_steps)
        rule = self.aorpo.opponent_rollout
        if rule == "adaptive":
            model_steps = adaptive_rollout_lengths(self.opponent_errors, horizon, self.aorpo.rollout_length_rule)
        else:
            model_steps = torch.full_like(self.opponent_model_steps, horizon if rule == "models" else 0)
        self.opponent_model_steps.copy_(model_steps)
        start = datamodule.sample(self.aorpo.rollout_starts)["state"].to(self.device)
        result = opponent_wise_rollouts(
            lambda obs, avail, features: self.agents.act(obs, avail, features),
            self.opponent_models,
            self.dynamics,
            self.observer,
            self.env_spec,
            start,
            horizon,
            model_steps,
        )
        self.model_store.add(result.transitions)
        self.counters["communications"] += result.communications
        self.counters["model_steps"] += result.model_steps
        n = self.env_spec.n_agents
        off_diagonal = model_steps[~torch.eye(n, dtype=torch.bool, device=model_steps.device)].float()
        return {
            "aorpo/rollout_length": float(horizon),
            "aorpo/opponent_model_steps": off_diagonal.mean(),
            "aorpo/communications": float(result.communications),
        }

    def _policy_batch(self, datamodule: OnlineDataModule) -> dict[str, torch.Tensor]:
        """``real_ratio`` real transitions (all agents learn from them, conditioned on opponent-model predictions)
        plus model transitions, each weighted for the agent whose ego rollout produced it."""
        size, n, device = self.online.batch_size, self.env_spec.n_agents, self.device
        real_count = size if len(self.model_store) == 0 else int(round(self.aorpo.real_ratio * size))
        parts = []
        if real_count:
            real = {k: v.to(device) for k, v in datamodule.sample(real_count).items()}
            real["opponent_action_features"] = self.conditioning(real["obs"], real["avail"], greedy=False)
            real["agent_weights"] = torch.ones(real_count, n, device=device)
            parts.append(real)
        if size - real_count:
            model = {k: v.to(device) for k, v in self.model_store.sample(size - real_count).items()}
            model["agent_weights"] = torch.nn.functional.one_hot(model.pop("ego"), n).float()
            parts.append(model)
        keys = set.intersection(*(set(p) for p in parts))
        return {k: torch.cat([p[k].float() if p[k].dtype != torch.bool else p[k] for p in parts]) for k in keys}

    # ------------------------------------------------------------------------------------------ resuming
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["aorpo_model_store"] = self.model_store.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "aorpo_model_store" in checkpoint:
            self.model_store.load_state_dict(checkpoint["aorpo_model_store"])

    # ------------------------------------------------------------------------------------------ model error
    @torch.no_grad()
    def model_error_rollout(self, sequences: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ego 0's model branched from real states under the recorded joint actions (dynamics error, §6.3)."""
        state = sequences["state"][:, 0]
        predicted = []
        for t in range(sequences["state"].shape[1] - 1):
            joint = sequences["action_features"][:, t].flatten(-2)
            state = self.dynamics.step(
                state.unsqueeze(0).expand(self.env_spec.n_agents, -1, -1),
                joint.unsqueeze(0).expand(self.env_spec.n_agents, -1, -1),
                deterministic=True,
            )[0][0]
            predicted.append(state)
        return torch.stack(predicted, dim=1), sequences["next_state"][:, :-1]


class AORPO(OpponentWiseModelUsage, MASAC):
    """AORPO on MASAC (the paper's method)."""

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        online: OnlineConfig = OnlineConfig(),
        masac: MASACConfig = MASACConfig(),
        aorpo: AORPOConfig = AORPOConfig(),
        world_model: EnsembleConfig = EnsembleConfig(hidden=(200, 200, 200, 200), learning_rate=1e-3),
        opponent_model: OpponentModelConfig = OpponentModelConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
        fast: FastPathConfig = FastPathConfig(),
    ) -> None:
        super().__init__(env_spec, online, masac, evaluation)
        self._init_model_usage(aorpo, world_model, opponent_model, fast)


class AORDPG(OpponentWiseModelUsage, MADDPG):
    """AORPO's model usage on MADDPG (the paper's AORDPG)."""

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        online: OnlineConfig = OnlineConfig(),
        maddpg: MADDPGConfig = MADDPGConfig(),
        aorpo: AORPOConfig = AORPOConfig(),
        world_model: EnsembleConfig = EnsembleConfig(hidden=(200, 200, 200, 200), learning_rate=1e-3),
        opponent_model: OpponentModelConfig = OpponentModelConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
        fast: FastPathConfig = FastPathConfig(),
    ) -> None:
        super().__init__(env_spec, online, maddpg, evaluation)
        self._init_model_usage(aorpo, world_model, opponent_model, fast)
