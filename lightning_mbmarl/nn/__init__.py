"""Neural-network building blocks shared by world models and learners."""

from lightning_mbmarl.nn.batched import BatchedLinear, BatchedMLP

__all__ = ["BatchedLinear", "BatchedMLP"]
