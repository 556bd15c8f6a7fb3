"""A task's known termination condition, applied to model-predicted next states.

MOMA-PPO's world model learns termination (a Bernoulli head per member, §3.1). That only works where the dataset
shows terminations: the Ant medium dataset made here has 4 terminal transitions in 198k, so the learned head never
fires, while a policy trained in the model learns to hop and the real Ant ends the episode as soon as its torso
leaves the healthy height range. Offline model-based methods on MuJoCo (MBPO, MOPO, MOReL) end model rollouts with
the task's own termination rule instead; with ``known_termination`` set, MOMA-PPO uses it in addition to the
learned vote. This is not in the MOMA-PPO paper; it is off unless a config sets it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class StateRangeTermination:
    """Terminal when ``next_state[..., index]`` leaves ``[low, high]`` or any entry is not finite.

    Gymnasium's Ant-v5 (``terminate_when_unhealthy``): the torso height z, state index 0 here, outside
    ``healthy_z_range = (0.2, 1.0)``.
    """

    def __init__(self, index: int, low: float, high: float) -> None:
        if not low < high:
            raise ValueError(f"known termination: the healthy range must have low < high, got [{low}, {high}]")
        self.index, self.low, self.high = int(index), float(low), float(high)

    @classmethod
    def from_config(cls, value: Sequence[float] | None, state_dim: int) -> "StateRangeTermination | None":
        """From ``(state index, low, high)`` (None: no known termination), checked against ``state_dim``."""
        if value is None:
            return None
        if len(value) != 3 or float(value[0]) != int(value[0]):
            raise ValueError(
                f"known_termination must be [state index, low, high], e.g. [0, 0.2, 1.0] for the Ant's "
                f"torso height; got {list(value)}"
            )
        index = int(value[0])
        if not 0 <= index < state_dim:
            raise ValueError(f"known_termination: state index {index} is outside the state (dimension {state_dim})")
        return cls(index, float(value[1]), float(value[2]))

    def __call__(self, next_state: torch.Tensor) -> torch.Tensor:
        """next_state [B, S] -> terminal bool [B]."""
        value = next_state[..., self.index]
        return (value < self.low) | (value > self.high) | ~torch.isfinite(next_state).all(-1)

    def __repr__(self) -> str:
        return f"StateRangeTermination(index={self.index}, healthy=[{self.low}, {self.high}])"
