"""A private random stream: code that must draw reproducibly from its own seed without moving the run's generators
(sampled evaluations, dataset collection)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def own_random_stream(seed: int, device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Inside, torch's random generators (the CPU's and a CUDA ``device``'s) start from ``seed``; after, they are
    back where they were. Disabled, it changes nothing."""
    if not enabled:
        yield
        return
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
