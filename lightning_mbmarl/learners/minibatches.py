"""Shuffled minibatches over a batch of transitions, epoch after epoch, that can be checkpointed mid-way."""

from __future__ import annotations

import math
from typing import Any

import torch


class MinibatchQueue:
    """``epochs`` passes over ``data`` (dict of tensors sharing a leading size ``M``) in shuffled minibatches.

    One :meth:`pop` per optimisation step, so a training loop can take one gradient step per call (what
    Lightning's manual optimisation and DDP expect) and a checkpoint can be taken between any two steps.
    """

    def __init__(self, data: dict[str, torch.Tensor], minibatch_size: int, epochs: int) -> None:
        sizes = {k: v.shape[0] for k, v in data.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"MinibatchQueue: tensors must share their leading size, got {sizes}")
        self.data = data
        self.size = next(iter(sizes.values()))
        self.minibatch_size = max(1, min(minibatch_size, self.size))
        self.per_epoch = math.ceil(self.size / self.minibatch_size)
        self.total = self.per_epoch * epochs if self.size else 0
        self.position = 0
        self.order = torch.empty(0, dtype=torch.long)

    @property
    def exhausted(self) -> bool:
        return self.position >= self.total

    def pop(self) -> dict[str, torch.Tensor]:
        """The next minibatch (a new shuffle starts every epoch)."""
        if self.exhausted:
            raise IndexError("MinibatchQueue is exhausted")
        slot = self.position % self.per_epoch
        if slot == 0:
            self.order = torch.randperm(self.size, device=next(iter(self.data.values())).device)
        index = self.order[slot * self.minibatch_size : (slot + 1) * self.minibatch_size]
        self.position += 1
        return {k: v[index] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "minibatch_size": self.minibatch_size,
            "total": self.total,
            "position": self.position,
            "order": self.order,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str = "cpu") -> "MinibatchQueue":
        data = {k: v.to(device) for k, v in state["data"].items()}
        queue = cls(data, state["minibatch_size"], epochs=1)
        queue.total, queue.position, queue.order = state["total"], state["position"], state["order"].to(device)
        return queue
