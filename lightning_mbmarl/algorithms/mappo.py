"""Online MAPPO (Yu et al. 2022) with the foundation's learner: the model-free reference of the online methods and
the trainer of the expert teams that make offline datasets.

Read top to bottom, a round is: step the environment copies for ``rollout_steps`` vector steps with the current
policies (remembering each step's log-probabilities and histories), compute values and Appendix A's GAE with
terminal masks (absorbing states) and timeout masks (time limits, and the round's last step, which bootstrap from
the value of the true next state), then take one MAPPO minibatch step per training step for ``epochs`` passes.
The run ends after ``total_env_steps`` environment steps (summed over ranks) and a final evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig, MultiAgentAlgorithm, as_config
from lightning_mbmarl.algorithms.optimization import mappo_step
from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.gae import timeout_gae
from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig
from lightning_mbmarl.learners.memory import History, push_history
from lightning_mbmarl.learners.minibatches import MinibatchQueue


@dataclass
class OnlinePPOConfig:
    """Interaction schedule of online MAPPO."""

    total_env_steps: int = 1_000_000  # stop once this many environment steps are taken (summed over ranks)
    rollout_steps: int = 125  # vector steps per round (x num_envs environment steps)


class MAPPO(MultiAgentAlgorithm):
    """Online MAPPO on an :class:`OnlineDataModule` (discrete or continuous actions, optional memory)."""

    progress_counters = ("env_steps",)

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        online: OnlinePPOConfig = OnlinePPOConfig(),
        mappo: MAPPOConfig = MAPPOConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
    ) -> None:
        super().__init__(env_spec, evaluation)
        self.save_config_hyperparameters()
        self.online, self.mappo_config = as_config(online, OnlinePPOConfig), as_config(mappo, MAPPOConfig)
        self.actor_critic = MAPPOActorCritic(self.env_spec, self.env_spec.state_dim, self.mappo_config)
        self.register_buffer(
            "entropy_alpha", torch.full((self.env_spec.n_agents,), self.mappo_config.initial_entropy_alpha)
        )
        self.counters.update(env_steps=0, rounds=0, policy_updates=0)
        self._queue: MinibatchQueue | None = None

    @property
    def history_length(self) -> int:
        return self.mappo_config.memory_length

    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        return self.actor_critic.act(obs, avail, *history, greedy=greedy)[0]

    def configure_optimizers(self):
        return torch.optim.Adam(self.actor_critic.parameter_groups())

    # ------------------------------------------------------------------------------------------- training
    def schedule_done(self) -> bool:
        round_done = self._queue is None or self._queue.exhausted
        return round_done and self.counters["env_steps"] >= self.online.total_env_steps

    def progress(self) -> tuple[str, float, float]:
        return "env steps", float(self.counters["env_steps"]), float(self.online.total_env_steps)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        if self._queue is None or self._queue.exhausted:
            self._queue = self._collect_round()
        minibatch = {k: v.to(self.device) for k, v in self._queue.pop().items()}
        losses = mappo_step(
            self,
            self.optimizers(),
            self.actor_critic,
            minibatch,
            self.entropy_alpha,
            self.mappo_config,
            self.counters["policy_updates"],
        )
        self.counters["policy_updates"] += 1
        if self._queue.exhausted:
            self.counters["rounds"] += 1
            if self.schedule_done():
                self.finish()  # before logging: the last training step is always a logged one
        self.log_training_progress(
            {
                **{f"mappo/{k}": v for k, v in losses.items() if v.dim() == 0},
                "env_steps": float(self.counters["env_steps"]),
            }
        )

    @torch.no_grad()
    def _collect_round(self) -> MinibatchQueue:
        datamodule = self.trainer.datamodule  # an OnlineDataModule: MultiAgentAlgorithm.setup checked it
        acted: list[tuple[History, torch.Tensor]] = []

        def policy(obs: torch.Tensor, avail: torch.Tensor, history: History) -> torch.Tensor:
            actions, log_prob = self.actor_critic.act(obs, avail, *history)
            acted.append((history, log_prob))
            return actions

        collected = datamodule.collect(policy, self.online.rollout_steps)
        self.counters["env_steps"] = datamodule.total_env_steps()
        self.record_episodes(collected.episodes)
        return MinibatchQueue(
            self._advantages(collected.steps, acted), self.mappo_config.minibatch_size, self.mappo_config.epochs
        )

    def _advantages(self, steps, acted) -> dict[str, torch.Tensor]:
        """Flattened ``[T * E]`` PPO batch with Appendix A's GAE over the round's ``[T, E]`` steps."""
        device, spec = self.device, self.env_spec
        T = len(steps)
        stack = lambda key: torch.stack([getattr(s, key) for s in steps]).to(device)  # noqa: E731  [T, E, ...]
        obs, state, avail, action = stack("obs"), stack("state"), stack("avail"), stack("action")
        history = tuple(torch.stack([h[k] for h, _ in acted]) for k in range(3))  # each [T, E, ...]
        next_history = push_history(*history, obs, encode_actions(action, spec))
        flat = lambda x: x.flatten(0, 1)  # noqa: E731
        values = self.actor_critic.value(flat(state), flat(obs), *map(flat, history)).view(T, -1)
        next_values = self.actor_critic.value(
            flat(stack("next_state")), flat(stack("next_obs")), *map(flat, next_history)
        ).view(T, -1)
        terminated, truncated = stack("terminated"), stack("truncated")
        round_end = torch.zeros_like(truncated)
        round_end[-1] = True  # the round stops mid-episode: bootstrap like a time limit
        advantages, returns = timeout_gae(
            rewards=stack("reward").float(),
            values=values,
            next_values=next_values,
            masks=1.0 - terminated.float(),
            timeout_masks=1.0 - (truncated | round_end).float(),
            gamma=self.mappo_config.gamma,
            lam=self.mappo_config.gae_lambda,
        )
        batch = {
            "state": state,
            "obs": obs,
            "avail": avail,
            "action": action,
            "old_log_prob": torch.stack([lp for _, lp in acted]),
            "advantage": advantages,
            "return": returns,
        }
        if self.history_length:
            batch.update(zip(("history_obs", "history_action", "history_mask"), history))
        return {k: flat(v).cpu() for k, v in batch.items()}

    # ------------------------------------------------------------------------------------------ resuming
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._queue is not None and not self._queue.exhausted:
            checkpoint["mappo_round_queue"] = self._queue.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "mappo_round_queue" in checkpoint:
            self._queue = MinibatchQueue.from_state_dict(checkpoint["mappo_round_queue"])
