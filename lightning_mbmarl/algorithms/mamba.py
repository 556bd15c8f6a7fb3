"""MAMBA: multi-agent model-based RL with a discrete-latent world model and attention (Egorov & Shpilman, AAMAS 2022).

Read top to bottom, one training step is one iteration:

1. top the replay buffer up by ``online.env_steps_per_update`` environment steps (:class:`OnlineAlgorithm`:
   uniform random actions during warm-up, then the policy, acting on the RSSM posterior it filters online);
2. ``mamba.model_updates`` world-model gradient steps, each on ``online.batch_size`` replay windows of
   ``mamba.sequence_length`` steps (:func:`~lightning_mbmarl.world_models.rssm_losses.world_model_loss`);
3. ``mamba.policy_rounds`` rounds of policy learning: filter a fresh batch of windows, imagine
   ``mamba.imagination_horizon`` steps from every filtered state with the current policy (masked by the world
   model's predicted availability), and take ``mappo.epochs`` passes of MAPPO minibatch steps over the imagined
   trajectories (:mod:`~lightning_mbmarl.learners.latent_actor_critic`: categorical policy, attention critic).

Acting in the real environment: each environment copy's posterior is filtered step by step
(:meth:`RSSMWorldModel.filter_step`, restarted at episode starts) and the policy acts on its features. The data
module serves one step of history, which says where episodes start and which actions were taken last; sampled
(collection) and greedy (evaluation) play keep separate filters; a stream that starts mid-episode (the first
policy step after warm-up) restarts its filter there, as replay windows do. The world model runs in eval mode
(no dropout) whenever it acts or imagines.

Subclasses change the imagination through :meth:`MAMBA.rollout_model` (MAG plans there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from lightning_mbmarl.algorithms.base import EvaluationConfig, as_config, check_action_kind_options
from lightning_mbmarl.algorithms.optimization import mappo_step, optimizer_step
from lightning_mbmarl.algorithms.online import OnlineAlgorithm, OnlineConfig
from lightning_mbmarl.data.online_datamodule import OnlineDataModule
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.latent_actor_critic import AttentionCriticConfig, LatentActorCritic, imagined_ppo_batch
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.learners.memory import History
from lightning_mbmarl.learners.minibatches import MinibatchQueue
from lightning_mbmarl.nn.fast_path import FastPath, FastPathConfig
from lightning_mbmarl.nn.one_hot_input import LatentLayout
from lightning_mbmarl.world_models.imagination import imagine
from lightning_mbmarl.world_models.rssm import RSSMConfig, RSSMState, RSSMWorldModel
from lightning_mbmarl.world_models.rssm_losses import TERMS, world_model_loss


@dataclass
class MAMBAConfig:
    """MAMBA's learning schedule (defaults: the released code's tuned SMAC configuration)."""

    sequence_length: int = 20  # steps of each replay window (SEQ_LENGTH)
    model_updates: int = 60  # world-model gradient steps per iteration (MODEL_EPOCHS)
    policy_rounds: int = 4  # imagination rounds per iteration, each trained for mappo.epochs passes (EPOCHS)
    imagination_horizon: int = 15  # imagined steps from every filtered replay state (HORIZON)
    # whose reward each agent's advantage is computed from in imagination: "team" (the agents' mean predicted
    # reward, one team value: the released MAMBA and MABL learners) or "agent" (its own predicted reward and a value
    # per agent: MABL §2's r^i and Q_i; differs from "team" only where the reward heads learn per-agent rewards)
    imagined_rewards: Literal["team", "agent"] = "team"

    def __post_init__(self) -> None:
        if min(self.sequence_length, self.imagination_horizon) < 1 or min(self.model_updates, self.policy_rounds) < 0:
            raise ValueError(f"MAMBAConfig: lengths must be >= 1 and update counts >= 0, got {self}")
        if self.imagined_rewards not in ("team", "agent"):
            raise ValueError(f"MAMBAConfig: imagined_rewards must be 'team' or 'agent', got {self.imagined_rewards!r}")


#: MAMBA's interaction defaults: 40 windows per batch, 500 warm-up steps (MIN_BUFFER), an iteration per 50 steps
MAMBA_ONLINE = OnlineConfig(total_env_steps=100_000, warmup_env_steps=500, env_steps_per_update=50, batch_size=40)
#: MAMBA's PPO: lr 5e-4, gamma .99, lambda .95, 5 epochs, minibatches of 2000 imagined states, entropy 1e-3,
#: gradient clip 100, one policy shared by all agents
MAMBA_PPO = MAPPOConfig(
    hidden=(256, 256),
    actor_lr=5e-4,
    critic_lr=5e-4,
    gamma=0.99,
    gae_lambda=0.95,
    epochs=5,
    minibatch_size=2000,
    max_grad_norm=100.0,
    initial_entropy_alpha=1e-3,
    entropy_coef_lr=0.0,
    memory_length=0,
    share_parameters=True,
)


#: options of one action kind only: the availability head's (discrete); the Gaussian policy's (continuous)
ACTION_KIND_OPTIONS = {
    "world_model.avail_scale": "discrete",
    "world_model.avail_threshold": "discrete",
    "mappo.min_std": "continuous",
    "mappo.action_penalty_coef": "continuous",
}


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode (no dropout) inside the block, its previous mode restored after."""
    was_training = module.training
    module.train(False)
    try:
        yield
    finally:
        module.train(was_training)


class MAMBA(OnlineAlgorithm):
    """MAMBA on an :class:`OnlineDataModule` (see the module docstring): discrete actions as in the paper, or
    continuous ones (:mod:`~lightning_mbmarl.world_models.action_format`, a Gaussian policy)."""

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        online: OnlineConfig = MAMBA_ONLINE,
        mamba: MAMBAConfig = MAMBAConfig(),
        world_model: RSSMConfig = RSSMConfig(),
        mappo: MAPPOConfig = MAMBA_PPO,
        critic: AttentionCriticConfig = AttentionCriticConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
        fast: FastPathConfig = FastPathConfig(),
    ) -> None:
        super().__init__(env_spec, as_config(online, OnlineConfig), evaluation)
        self.save_config_hyperparameters()
        self.fast = FastPath(as_config(fast, FastPathConfig))
        self.mamba, self.mappo_config = as_config(mamba, MAMBAConfig), as_config(mappo, MAPPOConfig)
        self.world_model = self.build_world_model(world_model)
        check_action_kind_options(
            type(self).__name__,
            self.env_spec,
            {"world_model": self.world_model.config, "mappo": self.mappo_config},
            ACTION_KIND_OPTIONS,
        )
        self.actor_critic = self.build_actor_critic(as_config(critic, AttentionCriticConfig))
        alpha = torch.full((self.env_spec.n_agents,), self.mappo_config.initial_entropy_alpha)
        self.register_buffer("entropy_alpha", alpha)  # fixed unless mappo.entropy_coef_lr > 0
        self.counters.update(
            world_model_steps=0,
            policy_updates=0,
            imagined_transitions=0,
            iteration_model_updates=0,
            iteration_policy_rounds=0,
        )  # parts of the current iteration
        self._filters: dict[tuple[str, bool], RSSMState] = {}  # posterior per acting stream and greedy flag, [E, N]

    def build_world_model(self, config: RSSMConfig | dict[str, Any]) -> RSSMWorldModel:
        """The world model (subclasses: another kind, e.g. MABL's bi-level model)."""
        return RSSMWorldModel(self.env_spec, as_config(config, RSSMConfig))

    def build_actor_critic(
        self, critic: AttentionCriticConfig, policy_layout: LatentLayout | None = None
    ) -> LatentActorCritic:
        """The learner on the world model's features (``policy_layout``: the part of them the policy reads, default
        all)."""
        return LatentActorCritic(
            self.env_spec,
            self.world_model.layout,
            self.mappo_config,
            critic,
            policy_layout=policy_layout,
            agent_values=self.mamba.imagined_rewards == "agent",
        )

    def configure_optimizers(self):
        return [
            self.fast.adam(
                self.world_model.parameters(), self.trainer_precision, lr=self.world_model.config.learning_rate
            ),
            self.fast.adam(self.actor_critic.parameter_groups(), self.trainer_precision),
        ]

    # ----------------------------------------------------------------------------------------------- acting
    @property
    def history_length(self) -> int:
        return 1  # the last (observation, action): where episodes start, and the action the filter needs

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        """Filter each copy's posterior with the last action and ``obs [E, N, O]``, then act on its features."""
        return self.executed(self.actor_critic.act(self.filtered(obs, history, greedy).features, avail, greedy)[0])

    def executed(self, actions: torch.Tensor) -> torch.Tensor:
        """The actions the environment gets: continuous ones clipped to the action box (so replay, and the world
        model trained on it, hold what was executed); discrete choices as they are."""
        spec = self.env_spec
        return actions if spec.discrete else actions.clamp(spec.action_low, spec.action_high)

    def filtered(self, obs: torch.Tensor, history: History, greedy: bool) -> RSSMState:
        """Each copy's filter advanced by the last action and ``obs [E, N, O]`` (``world_model.filter_step``):
        ``[E, N]``. Each acting stream (collection, evaluation), greedy or sampled, keeps its own filter; a new stream
        restarts its filter."""
        _, history_action, history_mask = history
        if history_action is None or history_mask is None:
            raise ValueError(f"{type(self).__name__}.act needs the last step of history (history_length = 1)")
        is_first = ~history_mask[:, -1]  # the history restarts with each episode
        stream = (self.acting_stream, greedy)
        state = self._filters.get(stream)
        if state is None or state.deter.shape[0] != obs.shape[0]:  # a new stream (e.g. after warm-up): restart
            state, is_first = self.world_model.filter_start(is_first.shape), torch.ones_like(is_first)
        with evaluation_mode(self.world_model):  # the last actions, encoded [E, N, A]: one-hot, or as executed
            state = self.world_model.filter_step(state, history_action[:, :, -1], obs, is_first)
        self._filters[stream] = state
        return state

    def latent_policy(self, features: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The current policy sampling in imagination: ``(actions, log_probs)`` ``[..., N]``."""
        return self.actor_critic.act(features, avail)

    # ------------------------------------------------------------------------------------------- learning
    def update(self, datamodule: OnlineDataModule) -> dict[str, torch.Tensor | float] | None:
        """The iteration's world-model steps, then its policy rounds. Progress is counted as it goes, so a stop
        request between two parts returns None and the resumed run finishes the iteration from there."""
        logs: dict[str, torch.Tensor | float] = {}
        done = self.counters
        while done["iteration_model_updates"] < self.mamba.model_updates:
            if self.stop_requested():
                return None
            logs.update(self.learn_world_model(self._windows(datamodule)))
            done["iteration_model_updates"] += 1
        while done["iteration_policy_rounds"] < self.mamba.policy_rounds:
            if self.stop_requested():
                return None
            logs.update(self.learn_policy(self._windows(datamodule)))
            done["iteration_policy_rounds"] += 1
        done.update(iteration_model_updates=0, iteration_policy_rounds=0)
        return logs

    def update_in_progress(self) -> bool:
        return self.counters["iteration_model_updates"] + self.counters["iteration_policy_rounds"] > 0

    def _windows(self, datamodule: OnlineDataModule) -> dict[str, torch.Tensor]:
        batch = datamodule.sample_sequences(self.online.batch_size, self.mamba.sequence_length)
        return {key: value.to(self.device) for key, value in batch.items()}

    def learn_world_model(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One world-model gradient step on replay windows ``[B, L, ...]``; scalars to log."""
        with self.fast.autocast(self.device):
            losses = self.fast.compile("world_model_loss", world_model_loss)(self.world_model, batch)
        return self.world_model_step(losses, TERMS)

    def world_model_step(self, losses: dict[str, torch.Tensor], terms: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The optimiser step of a world-model loss (``losses["loss"]``); its ``terms`` as scalars to log."""
        optimizer_step(self, self.optimizers()[0], losses["loss"], self.world_model.config.grad_clip)
        self.counters["world_model_steps"] += 1
        return {f"world_model/{k}": losses[k].detach() for k in ("loss", *terms)}

    def rollout_model(self, length: int) -> RSSMWorldModel:
        """The model a rollout of ``length`` steps (imagination, model-error curves) steps with (MAMBA: the world
        model itself)."""
        return self.world_model

    @torch.no_grad()
    def imagine_from(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Filter replay windows ``[B, L, ...]`` and imagine from every filtered state (time first, ``[H, B * L]``)."""
        with evaluation_mode(self.world_model), self.fast.autocast(self.device):
            start = self.world_model.observe(batch).start.map(lambda x: x.flatten(0, 1))
            horizon = self.mamba.imagination_horizon
            return imagine(self.rollout_model(horizon), self.latent_policy, start, horizon)

    def learn_policy(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One round: imagine from ``batch``'s states, then ``mappo.epochs`` passes of PPO minibatch steps."""
        c = self.mappo_config
        data = imagined_ppo_batch(self.actor_critic, self.imagine_from(batch), c.gamma, c.gae_lambda)
        # Every rank must take the same number of gradient steps (DDP): keep as many samples as the smallest rank.
        size = int(self.all_gather(torch.tensor(data["advantage"].shape[0], device=self.device)).min())
        keep = torch.randperm(data["advantage"].shape[0], device=self.device)[:size]
        queue = MinibatchQueue({k: v[keep] for k, v in data.items()}, c.minibatch_size, c.epochs)
        optimizer = self.optimizers()[1]
        logs = {"mappo/imagined_return": data["return"].mean()}
        while not queue.exhausted:
            losses = mappo_step(
                self,
                optimizer,
                self.actor_critic,
                queue.pop(),
                self.entropy_alpha,
                c,
                self.counters["policy_updates"],
                self.fast,
            )
            self.counters["policy_updates"] += 1
            logs.update({f"mappo/{k}": v.detach() for k, v in losses.items() if v.dim() == 0})
        self.counters["imagined_transitions"] += size
        return logs

    # -------------------------------------------------------------------------------------- model error
    @torch.no_grad()
    def model_error_rollout(self, sequences: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Open-loop observation predictions along real windows ``[B, H + 1, ...]`` (MAG Fig. 3).

        The posterior after ``obs_0`` (filtered from a fresh state) is rolled with the real actions ``a_0 ..
        a_{H-1}`` through :meth:`rollout_model`; returns decoded predictions and the real ``next_obs_0 ..
        next_obs_{H-1}``, flattened over agents (padding zeroed): ``[B, H, N * O]`` each.
        """
        model = self.world_model
        with evaluation_mode(model):
            steps = sequences["obs"].shape[1] - 1
            state = self.first_posterior(sequences)
            rollout = self.rollout_model(steps)
            predicted = []
            actions = model.actions.inputs(sequences["action"])  # [B, H + 1, N, A]
            for t in range(steps):
                state = rollout.imagine_step(state, actions[:, t])
                predicted.append(torch.where(model.obs_mask, model.decode(state.features).float(), 0.0))
        target = sequences["next_obs"][:, :steps].float()
        return torch.stack(predicted, dim=1).flatten(2), target.flatten(2)

    def first_posterior(self, sequences: dict[str, torch.Tensor]) -> RSSMState:
        """The world model's posterior after each window's first observation, filtered from a fresh state: ``[B, N]``
        (where :meth:`model_error_rollout` starts)."""
        model = self.world_model
        return model.posterior(model.reset_prior(sequences["obs"].shape[:1]), model.encode(sequences["obs"][:, 0]))
