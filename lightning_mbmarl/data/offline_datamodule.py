"""The offline data path: a multi-agent HDF5 dataset served as random transition batches with agent histories.

Shapes: ``B`` batch, ``N`` agents, ``O`` padded observation size, ``A`` padded action size, ``S`` state size,
``H`` history length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, TypedDict

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, IterableDataset

from lightning_mbmarl.data.dataset_tool import example_recipe, make_command_hint, make_dataset_from_recipe
from lightning_mbmarl.data.encoding import resolve_history_length
from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.data.hdf5_format import DatasetError, OfflineDataset, read_dataset
from lightning_mbmarl.envs import EnvConfig, env_spec

Batch = dict[str, torch.Tensor]


def history_rows(dataset: OfflineDataset, history_length: int) -> np.ndarray:
    """int64 [T, H]: the rows of the ``H`` transitions before each transition in its episode, oldest first.

    Rows before the episode's start are -1 (padding), so no history reaches into an earlier episode.
    """
    starts, ends = dataset.episode_bounds()
    first = np.repeat(starts, ends - starts + 1)  # [T] first row of each transition's episode
    rows = np.arange(dataset.num_transitions)[:, None] + np.arange(-history_length, 0)[None, :]
    rows[rows < first[:, None]] = -1
    return rows


def split_indices(num_transitions: int, held_out_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)`` sorted int64 transition indices, a random split drawn from ``seed``."""
    order = np.random.default_rng(seed).permutation(num_transitions)
    n_held_out = int(round(num_transitions * held_out_fraction))
    return np.sort(order[n_held_out:]), np.sort(order[:n_held_out])


def _tensors(dataset: OfflineDataset) -> Batch:
    """The dataset's arrays under their batch names (CPU tensors)."""
    return {
        "state": torch.from_numpy(dataset.states),
        "obs": torch.from_numpy(dataset.observations),
        "action": torch.from_numpy(dataset.actions),
        "avail": torch.from_numpy(dataset.available_actions),
        "reward": torch.from_numpy(dataset.rewards),
        "terminal": torch.from_numpy(dataset.terminals.astype(np.float32)),
        "timeout": torch.from_numpy(dataset.timeouts.astype(np.float32)),
        "next_state": torch.from_numpy(dataset.next_states),
        "next_obs": torch.from_numpy(dataset.next_observations),
        "next_avail": torch.from_numpy(dataset.next_available_actions),
    }


class _TrainStream(IterableDataset):
    """An endless stream of batches of ``batch_size`` transitions drawn uniformly (with replacement) from ``rows``."""

    def __init__(
        self,
        make_batch: Callable[[torch.Tensor], Batch],  # transition rows [B] -> batch
        rows: torch.Tensor,  # int64 [T_train] rows to draw from
        batch_size: int,
        generator: torch.Generator,
    ) -> None:
        self.make_batch, self.rows, self.batch_size, self.generator = make_batch, rows, batch_size, generator

    def __iter__(self) -> Iterator[Batch]:
        while True:
            pick = torch.randint(len(self.rows), (self.batch_size,), generator=self.generator)
            yield self.make_batch(self.rows[pick])


class NamedDataset(TypedDict, total=False):
    """One entry of :class:`OfflineDataModule`'s ``datasets``: where the file is and how to make it if missing."""

    path: str
    make_if_missing: dict[str, Any]


def resolve_dataset(
    dataset_path: str | None,
    make_if_missing: dict[str, Any] | None,
    dataset: str | None,
    datasets: dict[str, NamedDataset] | None,
) -> tuple[str, dict[str, Any] | None]:
    """``(path, recipe)`` from either an explicit ``dataset_path`` (and recipe) or a ``dataset`` name picking one
    of ``datasets``; errors name the choices."""
    if dataset is None:
        if dataset_path is None:
            raise ValueError(
                "OfflineDataModule: give dataset_path (an HDF5 file) or dataset (a name among datasets: "
                f"{sorted(datasets or {})})"
            )
        return dataset_path, make_if_missing
    if dataset_path is not None or make_if_missing is not None:
        raise ValueError(
            f"OfflineDataModule: dataset={dataset!r} picks a file and recipe from datasets; leave dataset_path and "
            "make_if_missing unset (or set dataset: null to use them)"
        )
    if dataset not in (datasets or {}):
        raise ValueError(f"OfflineDataModule: unknown dataset {dataset!r}; this config names {sorted(datasets or {})}")
    entry = datasets[dataset]
    if "path" not in entry or set(entry) - {"path", "make_if_missing"}:
        raise ValueError(
            f"OfflineDataModule: datasets[{dataset!r}] = {dict(entry)}; an entry has a path and optionally a "
            "make_if_missing recipe"
        )
    return entry["path"], entry.get("make_if_missing")


class OfflineDataModule(pl.LightningDataModule):
    """Random transitions of an offline multi-agent dataset, each with its agents' recent history.

    Training batches (``train_dataloader``, endless) and :meth:`held_out_batch` hold:
    ``state`` [B, S], ``obs`` [B, N, O], ``action`` (int64 [B, N] or float [B, N, A]), ``action_features``
    [B, N, A] (:func:`encode_actions`), ``avail`` bool [B, N, A], ``reward`` [B], ``terminal`` [B] and ``timeout``
    [B] (0/1 floats), ``next_state`` [B, S], ``next_obs`` [B, N, O], ``next_avail`` bool [B, N, A],
    ``history_obs`` [B, N, H, O], ``history_action`` [B, N, H, A] (encoded) and ``history_mask`` bool [B, H]:
    the ``H`` previous (observation, action) pairs of the same episode, oldest first, zero-padded on the left
    with the mask False there. ``val_dataloader`` / ``test_dataloader`` yield one dummy item: the algorithm
    evaluates in the real environment in its validation / test step.
    """

    def __init__(
        self,
        env: EnvConfig,  # environment the data was collected in; its spec validates the file
        dataset_path: str | None = None,  # HDF5 file in the multi-agent layout of lightning_mbmarl.data.hdf5_format
        make_if_missing: dict[str, Any] | None = None,  # recipe for a missing file, e.g. {kind: icg, policy: neutral}
        # or {kind: mamujoco, policy: random, episodes: 1000} (see dataset_tool.make_dataset_from_recipe)
        dataset: str | None = None,  # instead of dataset_path: the name of one of `datasets`
        datasets: dict[str, NamedDataset]
        | None = None,  # named datasets, e.g. {random: {path: ..., make_if_missing: ...}}
        batch_size: int = 256,  # transitions per training batch
        history_length: int | None = None,  # previous (obs, action) pairs given with each transition; None: the model's
        held_out_fraction: float = 0.1,  # share of transitions held out for held_out_batch()
        seed: int = 0,  # seeds the train / held-out split and (plus 1000 * rank) the training sampler
    ) -> None:
        super().__init__()
        if batch_size < 1 or (history_length or 0) < 0 or not 0.0 <= held_out_fraction < 1.0:
            raise ValueError(
                f"OfflineDataModule: need batch_size >= 1, history_length >= 0 and 0 <= held_out_fraction < 1; "
                f"got {batch_size}, {history_length}, {held_out_fraction}"
            )
        self.env = env
        self.dataset_path, self.make_if_missing = resolve_dataset(dataset_path, make_if_missing, dataset, datasets)
        self.batch_size = batch_size
        self.history_length = history_length
        self.held_out_fraction = held_out_fraction
        self.seed = seed
        self.env_spec = env_spec(env)
        self._data: Batch | None = None  # the dataset's tensors, on the device the model trains on
        self._device = torch.device("cpu")
        self._history: torch.Tensor | None = None  # int64 [T, H] source rows, -1 for padding
        self.train_indices: torch.Tensor | None = None  # int64 [T_train]
        self.held_out_indices: torch.Tensor | None = None  # int64 [T_held_out]
        self._generator: torch.Generator | None = None
        self._pending_sampler_state: torch.Tensor | None = None

    # ---------------------------------------------------------------------------------------------------- setup

    def _ensure_file(self) -> None:
        """Create a missing dataset from the recipe on rank 0; every rank waits until it is there."""
        path = Path(self.dataset_path)
        rank = self.trainer.global_rank if self.trainer is not None else 0
        if rank == 0 and self.make_if_missing is not None and not path.exists():
            written = make_dataset_from_recipe(path, self.make_if_missing, self.env)
            rank_zero_info(f"OfflineDataModule: wrote missing dataset {written.resolve()} ({self.make_if_missing})")
        if self.trainer is not None:
            self.trainer.strategy.barrier("offline_dataset_ready")

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the dataset (creating it first if missing and a recipe is given), split it, index it."""
        if self._data is not None:
            return
        self._ensure_file()
        hint = f"create it with `{make_command_hint(self.env, self.dataset_path)}`"
        recipe = example_recipe(self.env)
        if recipe is not None:
            hint += f" or give the data module a make_if_missing recipe, e.g. {recipe}"
        dataset = read_dataset(self.dataset_path, self.env_spec, missing_hint=hint)
        train, val = split_indices(dataset.num_transitions, self.held_out_fraction, self.seed)
        if train.size == 0:
            raise DatasetError(
                f"{self.dataset_path}: {dataset.num_transitions} transitions leave none for training with "
                f"held_out_fraction={self.held_out_fraction}"
            )
        # The dataset lives where the model trains (setup runs before the strategy moves the model there), so batches
        # are gathered on that device: no per-step CPU batch building and copy.
        self._device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self._data = {key: value.to(self._device) for key, value in _tensors(dataset).items()}
        self.history_length = resolve_history_length(self.history_length, self.trainer, type(self).__name__)
        self._history = torch.from_numpy(history_rows(dataset, self.history_length)).to(self._device)
        self._episode_starts = torch.from_numpy(dataset.episode_bounds()[0])
        self.train_indices, self.held_out_indices = torch.from_numpy(train), torch.from_numpy(val)
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self._generator = torch.Generator().manual_seed(self.seed + 1000 * rank)
        if self._pending_sampler_state is not None:
            self._generator.set_state(self._pending_sampler_state)

    def _require_setup(self) -> Batch:
        if self._data is None:
            raise RuntimeError("OfflineDataModule: call setup() before asking for data")
        return self._data

    # -------------------------------------------------------------------------------------------------- batches

    def _history_batch(self, rows: torch.Tensor) -> Batch:
        """``history_obs`` [B, N, H, O], ``history_action`` [B, N, H, A], ``history_mask`` [B, H] of ``rows`` [B]."""
        data = self._require_setup()
        source = self._history[rows.to(self._device)]  # [B, H]
        mask = source >= 0
        keep = mask[:, :, None, None]
        safe = source.clamp(min=0)
        obs = data["obs"][safe] * keep  # [B, H, N, O]
        action = encode_actions(data["action"][safe], self.env_spec) * keep  # [B, H, N, A]
        return {
            "history_obs": obs.transpose(1, 2).contiguous(),
            "history_action": action.transpose(1, 2).contiguous(),
            "history_mask": mask,
        }

    def _batch(self, rows: torch.Tensor) -> Batch:
        """Every batch key for transitions ``rows`` [B]."""
        data = self._require_setup()
        rows = rows.to(self._device)
        batch = {key: value[rows] for key, value in data.items()}
        batch["action_features"] = encode_actions(batch["action"], self.env_spec)
        batch.update(self._history_batch(rows))
        return batch

    def train_dataloader(self) -> DataLoader:
        """Endless random training batches; the sampler is seeded ``seed + 1000 * global_rank``."""
        self._require_setup()
        stream = _TrainStream(self._batch, self.train_indices, self.batch_size, self._generator)
        return DataLoader(stream, batch_size=None, num_workers=0)

    def held_out_batch(self) -> Batch:
        """The whole held-out split as one batch (same keys as a training batch)."""
        self._require_setup()
        return self._batch(self.held_out_indices)

    def sample_start_states(self, n: int, generator: torch.Generator, episode_starts: bool = False) -> Batch:
        """``n`` random transitions of the whole dataset as rollout starts: ``state``, ``obs``, ``avail``, history.
        With ``episode_starts`` only the first transitions of the dataset's episodes (the environment's reset
        states, with empty histories)."""
        data = self._require_setup()
        if episode_starts:
            rows = self._episode_starts[torch.randint(len(self._episode_starts), (n,), generator=generator)]
        else:
            rows = torch.randint(len(data["state"]), (n,), generator=generator)
        rows = rows.to(self._device)
        starts = {key: data[key][rows] for key in ("state", "obs", "avail")}
        starts.update(self._history_batch(rows))
        return starts

    def bounds(self) -> dict[str, torch.Tensor]:
        """The dataset's bounding box: ``state_low`` / ``state_high`` [S] over states and next states, and
        ``reward_low`` / ``reward_high`` (scalars)."""
        data = self._require_setup()
        states = torch.cat([data["state"], data["next_state"]])
        return {
            "state_low": states.min(dim=0).values,
            "state_high": states.max(dim=0).values,
            "reward_low": data["reward"].min(),
            "reward_high": data["reward"].max(),
        }

    def val_dataloader(self) -> DataLoader:
        """One dummy item that triggers the algorithm's real-environment evaluation."""
        return DataLoader(torch.zeros(1, dtype=torch.long), batch_size=1)

    def test_dataloader(self) -> DataLoader:
        """One dummy item that triggers the algorithm's real-environment test episodes."""
        return DataLoader(torch.zeros(1, dtype=torch.long), batch_size=1)

    # --------------------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The training sampler's random state, so a resumed run draws the same batches."""
        if self._generator is None:
            return {} if self._pending_sampler_state is None else {"train_sampler": self._pending_sampler_state}
        return {"train_sampler": self._generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("train_sampler")
        if state is None:
            return
        self._pending_sampler_state = state
        if self._generator is not None:
            self._generator.set_state(state)
