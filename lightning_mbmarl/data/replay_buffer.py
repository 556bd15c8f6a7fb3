"""Replay storage for online methods: transitions of ``E`` environment copies, kept time-major per copy so that
both random transitions and fixed-length sequences (for sequence world models) can be sampled.

Storage is a ring of ``capacity`` steps per copy, ``[capacity, E, ...]`` tensors on the buffer's ``device`` (the
model's: batches are gathered where they are used, with no per-step CPU batch building and copy). Each stored step holds
what the team saw (``obs``, ``state``, ``avail``), what it did (``action``), what followed (``reward``,
``agent_rewards``, ``terminated``, ``truncated``) and the true next observation (``next_obs``, ``next_state``,
``next_avail``: after an episode ends the next *row* belongs to a new episode, so the true next one is kept apart).
``is_first`` marks the first step of an episode (sequence models reset their recurrent state there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.envs.base import EnvSpec


@dataclass
class StepRecord:
    """One step of ``E`` copies (tensors with leading ``E``) as :meth:`ReplayBuffer.add` takes it."""

    obs: torch.Tensor  # [E, N, O]
    state: torch.Tensor  # [E, S]
    avail: torch.Tensor  # bool [E, N, A]
    action: torch.Tensor  # int64 [E, N] or float [E, N, A]
    reward: torch.Tensor  # [E]
    agent_rewards: torch.Tensor  # [E, N]
    terminated: torch.Tensor  # bool [E]
    truncated: torch.Tensor  # bool [E]
    next_obs: torch.Tensor  # [E, N, O]
    next_state: torch.Tensor  # [E, S]
    next_avail: torch.Tensor  # bool [E, N, A]
    is_first: torch.Tensor  # bool [E]


def _field_shapes(spec: EnvSpec) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    n, o, a, s = spec.n_agents, spec.obs_dim, spec.action_dim, spec.state_dim
    action = ((n,), torch.int64) if spec.discrete else ((n, a), torch.float32)
    return {
        "obs": ((n, o), torch.float32),
        "state": ((s,), torch.float32),
        "avail": ((n, a), torch.bool),
        "action": action,
        "reward": ((), torch.float32),
        "agent_rewards": ((n,), torch.float32),
        "terminated": ((), torch.bool),
        "truncated": ((), torch.bool),
        "next_obs": ((n, o), torch.float32),
        "next_state": ((s,), torch.float32),
        "next_avail": ((n, a), torch.bool),
        "is_first": ((), torch.bool),
    }


class ReplayBuffer:
    """Ring buffer of the last ``capacity`` steps of each of ``num_envs`` environment copies.

    :meth:`sample` returns random transitions as a flat batch ``[B, ...]``; :meth:`sample_sequences` returns
    ``[B, L, ...]`` windows of ``L`` consecutive steps of one copy (windows may span episode boundaries; ``is_first``
    and ``terminated`` say where). Both add ``action_features`` (one-hot / raw actions) and the float flags
    ``terminal`` and ``timeout`` (= truncated) that losses read.
    """

    def __init__(self, spec: EnvSpec, capacity: int, num_envs: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"ReplayBuffer needs capacity >= 1 and num_envs >= 1, got {capacity}, {num_envs}")
        self.spec, self.capacity, self.num_envs = spec, capacity, num_envs
        self.device = torch.device(device)  # where storage lives and batches are returned; set before first use
        self._storage: dict[str, torch.Tensor] | None = None  # allocated on first use, not when a config is parsed
        self.position = 0  # next row to write
        self.size = 0  # rows filled (<= capacity)

    @property
    def storage(self) -> dict[str, torch.Tensor]:
        """``[capacity, num_envs, ...]`` tensors per field (allocated on first access)."""
        if self._storage is None:
            self._storage = {
                key: torch.zeros((self.capacity, self.num_envs, *shape), dtype=dtype, device=self.device)
                for key, (shape, dtype) in _field_shapes(self.spec).items()
            }
        return self._storage

    def to(self, device: torch.device | str) -> "ReplayBuffer":
        """Keep the storage (and return batches) on ``device`` from now on; returns the buffer."""
        self.device = torch.device(device)
        if self._storage is not None:
            self._storage = {key: store.to(self.device) for key, store in self._storage.items()}
        return self

    def __len__(self) -> int:
        """Number of stored transitions (all copies)."""
        return self.size * self.num_envs

    def add(self, record: StepRecord) -> None:
        for key, store in self.storage.items():
            value = getattr(record, key)
            if value.shape != store.shape[1:]:
                raise ValueError(
                    f"ReplayBuffer.add: {key} must have shape {tuple(store.shape[1:])}, got {tuple(value.shape)}"
                )
            store[self.position] = value.to(store.device, store.dtype, non_blocking=True)
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _rows(self, oldest_offset: torch.Tensor) -> torch.Tensor:
        """Storage rows of steps ``oldest_offset`` steps after the oldest stored one."""
        oldest = self.position - self.size if self.size < self.capacity else self.position
        return (oldest + oldest_offset) % self.capacity

    def _finish(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch["action_features"] = encode_actions(batch["action"], self.spec)
        batch["terminal"] = batch["terminated"].float()
        batch["timeout"] = batch["truncated"].float()
        return batch

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, recent: int | None = None
    ) -> dict[str, torch.Tensor]:
        """``batch_size`` random transitions; ``recent`` restricts them to the newest ``recent`` steps of each copy."""
        if self.size == 0:
            raise RuntimeError("ReplayBuffer.sample: the buffer is empty; collect environment steps first")
        window = self.size if recent is None else max(1, min(recent, self.size))
        offsets = torch.randint(self.size - window, self.size, (batch_size,), generator=generator)
        envs = torch.randint(self.num_envs, (batch_size,), generator=generator).to(self.device)
        rows = self._rows(offsets).to(self.device)
        return self._finish({key: store[rows, envs] for key, store in self.storage.items()})

    def sample_sequences(
        self, batch_size: int, length: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``batch_size`` windows of ``length`` consecutive steps of one copy each: tensors ``[B, L, ...]``."""
        if self.size < length:
            raise RuntimeError(f"ReplayBuffer.sample_sequences: {self.size} steps stored per copy, need >= {length}")
        starts = torch.randint(0, self.size - length + 1, (batch_size,), generator=generator)
        envs = torch.randint(self.num_envs, (batch_size,), generator=generator)
        rows = self._rows(starts.unsqueeze(1) + torch.arange(length)).to(self.device)  # [B, L]
        envs = envs.to(self.device).unsqueeze(1)
        return self._finish({key: store[rows, envs] for key, store in self.storage.items()})

    def state_dict(self) -> dict[str, Any]:
        """Only the filled rows, oldest first, on the CPU (a resumed buffer continues as if never saved)."""
        rows = self._rows(torch.arange(self.size)).to(self.device)
        return {
            "storage": {k: v[rows].cpu() for k, v in self.storage.items()},
            "capacity": self.capacity,
            "num_envs": self.num_envs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_envs"] != self.num_envs:
            raise ValueError(
                f"replay buffer saved with {state['num_envs']} environment copies, this run has "
                f"{self.num_envs}: resume with the same data.init_args.num_envs"
            )
        size = min(next(iter(state["storage"].values())).shape[0], self.capacity)
        for key, store in self.storage.items():
            store[:size] = state["storage"][key][-size:].to(store.device)
        self.size, self.position = size, size % self.capacity


class TransitionStore:
    """A ring of flat transitions (a dict of tensors sharing their leading axis), e.g. model-generated ones."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"TransitionStore needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.storage: dict[str, torch.Tensor] = {}
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, transitions: dict[str, torch.Tensor]) -> None:
        """Append ``M`` transitions (tensors ``[M, ...]``, kept on their device); the oldest are overwritten first."""
        first = next(iter(transitions.values()))
        count = first.shape[0]
        if not self.storage:
            self.storage = {
                k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=v.device)
                for k, v in transitions.items()
            }
        elif next(iter(self.storage.values())).device != first.device:  # e.g. restored on the CPU, used on a GPU
            self.storage = {k: v.to(first.device) for k, v in self.storage.items()}
        for key, store in self.storage.items():
            rows = (self.position + torch.arange(count, device=store.device)) % self.capacity
            store[rows] = transitions[key].detach().to(store.device, store.dtype)
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise RuntimeError("TransitionStore.sample: the store is empty")
        rows = torch.randint(self.size, (batch_size,), generator=generator)
        return {key: store[rows.to(store.device)] for key, store in self.storage.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "storage": {
                k: v[: self.size].cpu().clone() if self.size < self.capacity else v.cpu().clone()
                for k, v in self.storage.items()
            },
            "position": self.position,
            "size": self.size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.position = int(state["size"]), int(state["position"])
        self.storage = {}
        if state["storage"]:
            self.storage = {
                k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in state["storage"].items()
            }
            for key, value in state["storage"].items():
                self.storage[key][: value.shape[0]] = value
