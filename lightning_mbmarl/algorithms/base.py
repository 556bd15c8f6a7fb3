"""What every method's LightningModule shares: the environment spec, step counters, evaluation in the real
environment (greedy, or with sampled actions), and checkpointing of everything a resumed run needs (counters and
random-number states).

Subclasses implement :meth:`MultiAgentAlgorithm.act` (team actions from observations and histories) and their own
``training_step`` (manual optimisation: ``self.automatic_optimization = False``); they call
:meth:`MultiAgentAlgorithm.finish` when their schedule is done, which stops the trainer after a final evaluation.

Evaluation runs in ``validation_step`` (periodic, every ``trainer.val_check_interval`` training steps, and once more
when training finishes) and in ``test_step``: the data module's validation/test loaders only trigger it.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from lightning_mbmarl.algorithms.optimization import DeferredFiniteCheck
from lightning_mbmarl.data.env_runner import EnvRunner, FinishedEpisode, summarize_episodes
from lightning_mbmarl.data.offline_datamodule import OfflineDataModule
from lightning_mbmarl.data.online_datamodule import OnlineDataModule, random_team_policy
from lightning_mbmarl.envs import ActionKind, EnvConfig, EnvSpec, make_vector_env
from lightning_mbmarl.learners.memory import History
from lightning_mbmarl.random_streams import own_random_stream
from lightning_mbmarl.reference_scores import reference_for


ConfigT = TypeVar("ConfigT")


def as_config(value: ConfigT | dict[str, Any], cls: type[ConfigT]) -> ConfigT:
    """A config dataclass from itself or from the dict a checkpoint stored (see ``save_config_hyperparameters``)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; valid options: {sorted(fields)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    raise TypeError(f"expected {cls.__name__} or a dict of its fields, got {type(value).__name__}")


EVALUATION_POLICIES = ("greedy", "sampled", "random")


@dataclass
class EvaluationConfig:
    """Evaluation in the real environment.

    ``policy``: ``greedy`` (each agent's most likely action), ``sampled`` (actions drawn from the policy, as the
    released MAMBA and MABL code score their training episodes, which is what their papers report: on Flatland a
    greedy policy can keep a train waiting forever where the sampled one departs) or ``random`` (uniform random
    actions over the available ones, the policy unused: the random-play reference of a task under the same
    evaluation, e.g. ``validate --model.init_args.evaluation.policy=random``). Sampled and random evaluations draw
    from their own random stream, seeded by ``seed``: they are reproducible and leave the training's stream untouched.
    """

    episodes: int = 10  # episodes at each periodic evaluation
    final_episodes: int = 100  # episodes when training ends, and in `validate` / `test`
    seed: int = 10_000  # environment seed of evaluations (offset by rank and evaluation count)
    policy: Literal["greedy", "sampled", "random"] = "greedy"  # how actions are chosen

    def __post_init__(self) -> None:
        if self.policy not in EVALUATION_POLICIES:
            raise ValueError(f"EvaluationConfig: policy must be one of {EVALUATION_POLICIES}, got {self.policy!r}")


@dataclass(frozen=True)
class Capabilities:
    """What a method can learn from, declared once on its class (:attr:`MultiAgentAlgorithm.capabilities`): the
    action kinds it handles, checked against the environment when the method is built, and where its data come from,
    checked against the data module when it is fitted. A mismatch fails there with one error naming both."""

    action_kinds: tuple[ActionKind, ...] = ("discrete", "continuous")
    data: Literal["online", "offline"] = "online"  # OnlineDataModule: it collects its own; OfflineDataModule: a dataset


class CapabilityError(ValueError):
    """A method given an environment or a data module it cannot learn from (bad input: the command line reports it
    in one line)."""


def check_action_kind_options(method: str, spec: EnvSpec, sections: dict[str, Any], options: dict[str, str]) -> None:
    """Fail at start when an option that means something for one action kind only is set for an environment of the
    other: ``options`` maps ``"section.key"`` to its kind, ``sections`` each section's dataclass config; an option
    counts as set where it differs from its dataclass default. Raises :class:`CapabilityError` naming the option, its
    value and the environment."""
    for path, kind in options.items():
        section, key = path.split(".")
        config = sections[section]
        default = {f.name: f.default for f in dataclasses.fields(config)}[key]
        value = getattr(config, key)
        if kind != spec.action_kind and value != default:
            raise CapabilityError(
                f"{method}: {path}={value!r} applies to {kind} actions only; environment {spec.name!r} has "
                f"{spec.action_kind} actions: remove the option (its default is {default!r})"
            )


#: the data module class each kind of data needs
DATA_MODULES = {"online": OnlineDataModule, "offline": OfflineDataModule}


class MultiAgentAlgorithm(L.LightningModule):
    """Base of every method. ``env_spec`` is filled in by the CLI from the data module (``data.env_spec``)."""

    #: what the method can learn from (subclasses declare theirs)
    capabilities = Capabilities()

    #: counters every subclass keeps; subclasses add their own keys in ``__init__``
    counters: dict[str, int]

    def __init__(self, env_spec: EnvSpec | dict[str, Any] | None, evaluation: EvaluationConfig) -> None:
        super().__init__()
        if env_spec is None:
            raise ValueError(
                f"{type(self).__name__} needs env_spec: run it through `python -m lightning_mbmarl`, which takes it "
                "from the data module, or pass lightning_mbmarl.envs.env_spec(EnvConfig(...))"
            )
        self.env_spec = env_spec if isinstance(env_spec, EnvSpec) else EnvSpec.from_dict(env_spec)
        kinds = self.capabilities.action_kinds
        if self.env_spec.action_kind not in kinds:
            raise CapabilityError(
                f"{type(self).__name__} learns {' or '.join(kinds)} actions only; environment {self.env_spec.name!r} "
                f"has {self.env_spec.action_kind} actions: choose a {' or '.join(kinds)}-action environment or a method "
                f"for {self.env_spec.action_kind} actions"
            )
        self.evaluation = as_config(evaluation, EvaluationConfig)
        self.automatic_optimization = False
        self.counters = {"evaluations": 0}
        #: the stream of episodes :meth:`act` serves: "collection" (training data), or "evaluation" inside
        #: :meth:`evaluate`; a method that keeps state between calls (a latent filter) keeps one per stream
        self.acting_stream = "collection"
        self._finished = False
        self._unlogged_episodes: list[FinishedEpisode] = []
        self._unlogged_values: dict[str, torch.Tensor | float] = {}
        self._restored_rng: dict[str, Any] | None = None
        self.finite_check = DeferredFiniteCheck()  # divergence of losses on an accelerator, read at logged steps
        self._stop_signal: int | None = None  # set by the GracefulStop callback when SIGTERM / SIGINT arrives

    def save_config_hyperparameters(self) -> None:
        """``save_hyperparameters`` with the spec and every dataclass config stored as plain dicts, so checkpoints
        load with ``torch.load(weights_only=True)`` and ``hparams.yaml`` stays readable."""
        self.save_hyperparameters(ignore=["env_spec"])
        for key, value in list(self.hparams.items()):
            if dataclasses.is_dataclass(value):
                self.hparams[key] = dataclasses.asdict(value)
        self.hparams["env_spec"] = self.env_spec.to_dict()

    @property
    def trainer_precision(self) -> str | None:
        """The attached trainer's precision setting (e.g. ``bf16-mixed``), None without a trainer."""
        return None if self._trainer is None else str(self._trainer.precision)

    # ----------------------------------------------------------------------------------------------- acting
    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        """Team actions for ``B`` teams.

        obs [B, N, obs_dim], avail bool [B, N, action_dim], history = (history_obs [B, N, H, obs_dim],
        history_action [B, N, H, action_dim], history_mask bool [B, H]) -> actions (int64 [B, N] or
        float [B, N, action_dim]).
        """
        raise NotImplementedError

    @property
    def history_length(self) -> int:
        """How many past (observation, action) pairs :meth:`act` looks at (0: none)."""
        return 0

    # ------------------------------------------------------------------------------------------- evaluation
    def _env_config(self, env_config: EnvConfig | None) -> EnvConfig:
        if env_config is not None:
            return env_config
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "env"):
            raise ValueError(
                "evaluate() needs env_config when the module is not attached to a trainer with a data module"
            )
        return datamodule.env

    @torch.no_grad()
    def evaluate(self, episodes: int, seed: int, env_config: EnvConfig | None = None) -> dict[str, float]:
        """Run ``episodes`` episodes in the real environment (one environment copy each, stepped together), actions
        chosen as ``self.evaluation.policy`` says.

        Returns mean ``return``, ``normalized_score`` (when the environment has reference scores), ``length``,
        and the rate of every boolean episode flag the environment reports (e.g. ``won_rate``).
        """
        config = self._env_config(env_config)
        greedy = self.evaluation.policy == "greedy"
        act = (
            random_team_policy(self.env_spec)
            if self.evaluation.policy == "random"
            else lambda obs, avail, history: self.act(obs, avail, history, greedy)
        )
        env = make_vector_env(config, episodes)
        was_training, stream = self.training, self.acting_stream
        self.eval()
        self.acting_stream = "evaluation"
        try:
            with own_random_stream(seed, self.device, enabled=not greedy):
                runner = EnvRunner(env, self.history_length, seed, self.device)
                first_episode: dict[int, FinishedEpisode] = {}
                while len(first_episode) < episodes:
                    _, finished = runner.step(act)
                    for episode in finished:
                        first_episode.setdefault(episode.copy, episode)
        finally:
            env.close()
            self.train(was_training)
            self.acting_stream = stream
        results = list(first_episode.values())
        metrics = {k.removeprefix("episode_"): v for k, v in summarize_episodes(results).items()}
        reference = reference_for(config.name, config.kwargs)
        if reference is not None:
            metrics["normalized_score"] = float(
                np.mean([reference.normalize(e.episode_return, e.length) for e in results])
            )
        return metrics

    def _log_evaluation(self, prefix: str, episodes: int) -> None:
        seed = self.evaluation.seed + 100_003 * self.global_rank + 1_009 * self.counters["evaluations"]
        metrics = self.evaluate(episodes, seed)
        self.counters["evaluations"] += 1
        for key, value in metrics.items():
            self.log(f"{prefix}/{key}", value, sync_dist=True, prog_bar=key == "normalized_score")
        for key in self.progress_counters:  # the learning-curve x-axes, in the same row as the evaluation
            self.log(f"{prefix}/{key}", float(self.counters[key]), sync_dist=True)

    def evaluation_ready(self) -> bool:
        """Whether a policy worth evaluating exists yet (e.g. not while only the world model trains)."""
        return True

    def setup(self, stage: str) -> None:
        """Before fitting: the data module must serve the data the method learns from (:attr:`capabilities`)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        wanted = DATA_MODULES[self.capabilities.data]
        if stage == "fit" and not isinstance(datamodule, wanted):
            raise CapabilityError(
                f"{type(self).__name__} learns from {self.capabilities.data} data: use data.class_path "
                f"{wanted.__module__}.{wanted.__name__}, not {type(datamodule).__name__}"
            )

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self._trainer is not None and self.trainer.state.fn == "fit" and not self.evaluation_ready():
            return
        if self._stop_signal is not None:  # stopping on a signal: Lightning validates once more, no evaluation is due
            return
        final = self._finished or (self._trainer is not None and self.trainer.state.fn != "fit")
        self._log_evaluation("eval", self.evaluation.final_episodes if final else self.evaluation.episodes)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._log_evaluation("test", self.evaluation.final_episodes)

    # ---------------------------------------------------------------------------------------------- schedule
    def schedule_done(self) -> bool:
        """Whether the training schedule is complete (from the counters and the config): subclasses say when."""
        return False

    def progress(self) -> tuple[str, float, float]:
        """``(what is counted, done, total)`` of the run's schedule, for progress reports (subclasses say what)."""
        return "training steps", float(self.global_step), float("nan")

    def finish(self) -> None:
        """The training schedule is complete: stop after one last (final-size) evaluation."""
        self._finished = True
        self.trainer.should_stop = True

    def on_train_start(self) -> None:
        if self.schedule_done():  # a finished run resumed: nothing left to train
            rank_zero_info(
                f"{type(self).__name__}: the checkpoint's schedule is already complete ({self.counters}); "
                "nothing to train. Raise the budget in the config to train further."
            )
            self._finished = True
            self.trainer.should_stop = True

    def stop_requested(self) -> bool:
        """Whether a stop signal (SIGTERM, SIGINT) has arrived on any rank
        (:class:`~lightning_mbmarl.callbacks.graceful_stop.GracefulStop`). Training steps that take long poll it
        between their parts and return early; every rank polls at the same points (a collective under DDP)."""
        requested = self._stop_signal is not None
        if self._trainer is not None and self.trainer.world_size > 1:
            requested = bool(self.trainer.strategy.reduce_boolean_decision(requested, all=False))
        return requested

    def logging_step(self) -> bool:
        """Whether Lightning writes step metrics at this training step (every ``trainer.log_every_n_steps``).
        Each ``self.log`` costs about a millisecond on CPU (16% of an AORPO run when every step logged), so training
        steps log only when this is true. (A value logged at another step is not lost: Lightning writes each key's
        latest value at every later logged step of the epoch.)"""
        if self._trainer is None or not self.trainer.training:
            return True
        every = self.trainer.log_every_n_steps
        if every == 0:
            return False
        # the trainer's own rule, on its public progress counter: batches fetched so far, this one included
        fetched = self.trainer.fit_loop.epoch_loop.batch_progress.total.ready
        return fetched % every == 0 or self.trainer.should_stop

    def record_episodes(self, episodes: list[FinishedEpisode]) -> None:
        """Keep finished training episodes until the next logged step, which reports them all."""
        self._unlogged_episodes += episodes

    def log_training_progress(self, values: Mapping[str, torch.Tensor | float] | None = None) -> None:
        """Call once per training step with the step's scalars to log. At logged steps, writes the latest value of
        every key given since the last one (also those of periodic work done in between: model fits, rollout
        rounds), ``train/*`` statistics of the episodes finished since then, and the counters."""
        self._unlogged_values.update(
            {key: value.detach() if isinstance(value, torch.Tensor) else value for key, value in (values or {}).items()}
        )
        if not self.logging_step():
            return
        self.finite_check.raise_if_diverged()
        self.log_dict({key: float(value) for key, value in self._unlogged_values.items()})
        self._unlogged_values = {}
        for key, value in summarize_episodes(self._unlogged_episodes).items():
            self.log(f"train/{key}", value)
        self._unlogged_episodes = []
        for key, value in self.counters.items():
            self.log(f"counters/{key}", float(value), prog_bar=key in self.progress_counters)

    #: counters shown in the progress bar
    progress_counters: tuple[str, ...] = ()

    # ------------------------------------------------------------------------------------ seeding / resuming
    def on_fit_start(self) -> None:
        if self._restored_rng is not None:
            _set_rng_state(self._restored_rng)
            self._restored_rng = None
        else:
            # Same seed on every rank made identical initial networks; from here on each rank draws its own
            # samples (start states, actions, ensemble members) so that DDP averages different data.
            base = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed() % 2**31))
            seed = base + 7_919 * self.global_rank
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.finite_check.raise_if_diverged()  # never save diverged weights
        checkpoint["mbmarl_counters"] = dict(self.counters)
        checkpoint["mbmarl_rng"] = _get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.counters.update(checkpoint.get("mbmarl_counters", {}))
        self._restored_rng = checkpoint.get("mbmarl_rng")


def _get_rng_state() -> dict[str, Any]:
    """Random-number states as tensors and plain numbers (loadable with ``weights_only=True``)."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    version, python_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached_gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
