"""MaMuJoCo (gymnasium-robotics 1.4.x ``mamujoco_v1``) behind the multi-agent interface.

A single-agent gymnasium MuJoCo task (``Ant-v5``, ``Reacher-v5``, ``Humanoid-v5``, ...) is split into agents by
MaMuJoCo's ``agent_conf`` partition of its actuators. Choices made here:

* **Global state**: the task's single-agent observation (MaMuJoCo's ``env.state()``), except for Ant, whose 78
  contact-force numbers are dropped as in MOMA-PPO (the 27-number D4RL layout). Layouts: Ant 27, Reacher 10,
  Humanoid / HumanoidStandup 348, HalfCheetah 17; the index tables are in
  :mod:`lightning_mbmarl.envs.mamujoco_observations` and in :meth:`MaMuJoCoEnv.partition`.
* **Observations** are selections of state indices (``spec.obs_from_state``), so they can be derived from predicted
  states: Ant ``full`` / ``partial``; Reacher ``all_observant`` / ``independent`` / ``leader_only``; other tasks
  ``full`` / ``local`` (MaMuJoCo's own per-agent observation with its ``agent_obsk`` neighbourhood, default 1,
  which it maps to state indices itself).
* **Agent order** is MaMuJoCo's. Ant 4x2: agent 0 = leg 1 (hip_1, ankle_1) -> actuators [2, 3], agent 1 = leg 2
  -> [4, 5], agent 2 = leg 3 -> [6, 7], agent 3 = leg 4 -> [0, 1] (MOMA-PPO's split numbers agents by actuator
  instead, [[0, 1], [2, 3], [4, 5], [6, 7]]). :attr:`MaMuJoCoEnv.action_partition` records the mapping.
* **Actions** are in [-1, 1], clipped, then mapped linearly to each actuator's control range (an identity for Ant,
  Reacher and HalfCheetah; Humanoid's actuators take [-0.4, 0.4]).
* **Reward** is the task's (MaMuJoCo's shared) reward; ``terminated`` comes from the task (an unhealthy Ant or
  Humanoid); episodes are truncated after ``episode_length`` steps (default: the task's time limit). D4RL's Ant
  datasets come from gym's Ant-v2/v3 under mujoco-py 2, whose contact forces read zero, so their rewards carry no
  contact cost: pass ``contact_cost_weight=0.0`` to score against them.

Speed of random Ant 4x2 steps (gymnasium-robotics 1.4.2, mujoco 4.0.0, 2 CPU cores shared with other jobs, load
~6): 1,400-2,400 steps/s over three runs of 5,000 steps, against 1,250-1,350/s for MaMuJoCo's own ``step``, which
also builds every agent's local observation. Measured with::

    env = MaMuJoCoEnv("Ant", "4x2"); rng = np.random.default_rng(0); env.reset(0); t = time.perf_counter()
    for _ in range(5000):
        *_, term, trunc, _ = env.step(rng.uniform(-1, 1, (4, 2)).astype(np.float32))
        if term or trunc: env.reset()
    print(5000 / (time.perf_counter() - t), "steps/s")
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv
from lightning_mbmarl.envs.mamujoco_observations import (
    ANT_STATE_DIM,
    ANT_STATE_FIELDS,
    REACHER_STATE_DIM,
    REACHER_STATE_FIELDS,
    Indices,
    ant_observation,
    full_observation,
    observation_names,
    reacher_observation,
    structure_fields,
)

ANT_FIRST_JOINT_QPOS = 7  # qpos address of hip_1 (the free torso joint takes qpos[0:7])


def import_mamujoco() -> ModuleType:
    """gymnasium-robotics' ``mamujoco_v1`` module, or an ImportError that names the extra to install."""
    try:
        from gymnasium_robotics import mamujoco_v1
    except ImportError as err:
        raise ImportError(
            f"the mamujoco environment needs gymnasium-robotics and mujoco ({err}); "
            'install them with: pip install -e ".[mamujoco]"'
        ) from err
    return mamujoco_v1


def _agent_joints(partition: Sequence[Sequence[Any]], nq: int, first_qpos: int) -> list[list[int]]:
    """Joint numbers (qpos address - ``first_qpos``) of the MaMuJoCo nodes each agent controls."""
    return [[int(node.qpos_ids) % nq - first_qpos for node in part] for part in partition]


class MaMuJoCoEnv(MultiAgentEnv):
    """One MaMuJoCo task; see the module docstring for state, observations, actions and agent order.

    Args:
        scenario: gymnasium MuJoCo task, e.g. "Ant", "Reacher", "Humanoid", "HumanoidStandup", "HalfCheetah".
        agent_conf: MaMuJoCo partition, e.g. "4x2" (Ant), "2x1" (Reacher), "9|8" (Humanoids), "6x1" (HalfCheetah).
        observation: observation function (default: the scenario's fully observable one, listed first in
            :func:`~lightning_mbmarl.envs.mamujoco_observations.observation_names`).
        episode_length: steps before truncation (default: the task's time limit, 1000 for Ant, 50 for Reacher).
        **options: passed to MaMuJoCo (``agent_obsk``, ``render_mode``, ...) and on to ``gymnasium.make``
            (``ctrl_cost_weight``, ``contact_cost_weight``, ...); options that change the Ant or Reacher
            observation layout the index tables rely on are refused.
    """

    def __init__(
        self,
        scenario: str = "Ant",
        agent_conf: str = "4x2",
        observation: str | None = None,
        episode_length: int | None = None,
        **options: Any,
    ) -> None:
        mamujoco_v1 = import_mamujoco()
        names = observation_names(scenario)
        observation = names[0] if observation is None else observation
        if observation not in names:
            raise ValueError(f"mamujoco {scenario}: unknown observation {observation!r}; choose one of {names}")
        if episode_length is not None:
            if episode_length < 1:
                raise ValueError(f"mamujoco: episode_length must be >= 1, got {episode_length}")
            options = {**options, "max_episode_steps": episode_length}
        self.mamujoco = mamujoco_v1.parallel_env(scenario, agent_conf, **options)  # exposes the MuJoCo model/data
        self._env = self.mamujoco.single_agent_env  # the gymnasium task, stepped directly with the joint action
        self.scenario, self.agent_conf, self.observation = scenario, agent_conf, observation

        parts = self.mamujoco.agent_action_partitions
        self.joints: tuple[tuple[str, ...], ...] = tuple(tuple(node.label for node in part) for part in parts)
        # action_partition[i][k]: the actuator (index of the single-agent action) agent i's action dimension k drives
        self.action_partition: tuple[tuple[int, ...], ...] = tuple(
            tuple(int(node.act_ids) for node in part) for part in parts
        )
        state_dim, self.observation_partition, self.state_fields = self._resolve_state(parts)

        episode_limit = episode_length if episode_length is not None else int(self._env.spec.max_episode_steps)
        self.spec = EnvSpec(
            name=f"mamujoco:{scenario}-{agent_conf}-{observation}",
            n_agents=len(parts),
            obs_dims=tuple(len(idx) for idx in self.observation_partition),
            state_dim=state_dim,
            action_kind="continuous",
            action_sizes=tuple(len(p) for p in self.action_partition),
            episode_limit=episode_limit,
            agent_names=tuple(self.mamujoco.possible_agents),
            obs_from_state=self.observation_partition,
        )
        self._actuators = np.concatenate([np.asarray(p, dtype=np.int64) for p in self.action_partition])
        self._action_mask = self.spec.action_mask()
        self._obs_index = np.concatenate([np.asarray(idx, dtype=np.int64) for idx in self.observation_partition])
        self._obs_mask = self.spec.observation_mask()
        self._ctrl_low = self._env.action_space.low.astype(np.float64)
        self._ctrl_high = self._env.action_space.high.astype(np.float64)
        self._t = 0

    def _resolve_state(self, parts: Sequence[Sequence[Any]]) -> tuple[int, Indices, dict[str, tuple[int, int]]]:
        """``(state_dim, observation indices per agent, state fields)`` of this scenario and observation function."""
        task = self._env.unwrapped
        raw_dim = int(self._env.observation_space.shape[0])
        structure = getattr(task, "observation_structure", None)
        nq = int(task.model.nq)
        if self.scenario == "Ant":
            if structure is None or (structure["skipped_qpos"], structure["qpos"], structure["qvel"]) != (2, 13, 14):
                raise ValueError(
                    f"mamujoco Ant: expected the Ant-v5 observation to start with qpos[2:15] and qvel[0:14], got "
                    f"structure {structure}; drop the option that changes it "
                    "(e.g. exclude_current_positions_from_observation)"
                )
            joints = _agent_joints(parts, nq, ANT_FIRST_JOINT_QPOS)
            return ANT_STATE_DIM, ant_observation(self.observation, joints), dict(ANT_STATE_FIELDS)
        if self.scenario == "Reacher":
            if raw_dim != REACHER_STATE_DIM:
                raise ValueError(
                    f"mamujoco Reacher: expected the 10-number Reacher-v5 observation, got {raw_dim} numbers"
                )
            joints = _agent_joints(parts, nq, 0)
            return REACHER_STATE_DIM, reacher_observation(self.observation, joints), dict(REACHER_STATE_FIELDS)
        fields = structure_fields(structure) if structure is not None else {"observation": (0, raw_dim)}
        if self.observation == "full":
            return raw_dim, full_observation(len(parts), raw_dim), fields
        factorization = self.mamujoco.observation_factorization
        if factorization is None:
            raise ValueError(
                f"mamujoco {self.scenario}: MaMuJoCo cannot map its local observations to state indices for this task "
                "(its gymnasium environment has no observation_structure); use observation='full'"
            )
        local = tuple(tuple(int(j) for j in factorization[agent]) for agent in self.mamujoco.possible_agents)
        return raw_dim, local, fields

    def single_agent_action(self, actions: np.ndarray) -> np.ndarray:
        """Team actions ``[..., N, action_dim]`` in [-1, 1] (clipped; padding ignored) -> the task's action
        ``[..., n_actuators]`` in the actuators' control ranges."""
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        unit = np.empty(actions.shape[:-2] + (len(self._actuators),))
        unit[..., self._actuators] = actions[..., self._action_mask]
        return self._ctrl_low + (unit + 1.0) * 0.5 * (self._ctrl_high - self._ctrl_low)

    def _observe(self, task_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        state = np.asarray(task_obs[: self.spec.state_dim], dtype=np.float32)
        obs = np.zeros((self.spec.n_agents, self.spec.obs_dim), np.float32)
        obs[self._obs_mask] = state[self._obs_index]
        return obs, state, np.ones((self.spec.n_agents, self.spec.action_dim), bool)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        task_obs, _ = self._env.reset(seed=seed)
        self._t = 0
        return self._observe(task_obs)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        actions = np.asarray(actions)
        expected = (self.spec.n_agents, self.spec.action_dim)
        if actions.shape != expected:
            raise ValueError(
                f"{self.spec.name}: actions must have shape {expected} (agents, padded action dims), got {actions.shape}"
            )
        task_obs, reward, terminated, truncated, task_info = self._env.step(self.single_agent_action(actions))
        self._t += 1
        obs, state, avail = self._observe(task_obs)
        info = {key: float(value) for key, value in task_info.items() if np.ndim(value) == 0}
        reward = float(reward)
        truncated = bool(truncated) or self._t >= self.spec.episode_limit
        return (
            obs,
            state,
            avail,
            reward,
            np.full(self.spec.n_agents, reward, np.float32),
            bool(terminated),
            truncated,
            info,
        )

    def partition(self) -> dict[str, Any]:
        """JSON-ready record of who controls and observes what, for dataset metadata:
        agents, their joints, ``action_partition`` (actuator indices), ``observation_partition`` (state indices) and
        ``state_fields`` (name -> ``[start, stop)`` state indices)."""
        return {
            "scenario": self.scenario,
            "agent_conf": self.agent_conf,
            "observation": self.observation,
            "agents": list(self.spec.agent_names),
            "joints": [list(j) for j in self.joints],
            "action_partition": [list(p) for p in self.action_partition],
            "observation_partition": [list(idx) for idx in self.observation_partition],
            "state_fields": {name: list(span) for name, span in self.state_fields.items()},
        }

    #: MuJoCo's off-screen renderer (``MUJOCO_GL``: EGL by default here, OSMesa or GLFW where that is what exists)
    render_options = {"render_mode": "rgb_array"}

    def render(self) -> np.ndarray:
        frame = self._env.render()
        if frame is None:
            raise NotImplementedError(f"mamujoco {self.scenario}: build the copy with {self.render_options} to draw it")
        return np.asarray(frame, np.uint8)

    def close(self) -> None:
        self.mamujoco.close()
