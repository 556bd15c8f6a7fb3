"""MaMuJoCo global-state layouts and observation functions as selections of state indices (pure numpy).

Every observation function here lists, per agent, the global-state indices that agent observes, in increasing
order: agent ``i`` observes ``state[indices[i]]`` (:attr:`EnvSpec.obs_from_state`), so a world model that predicts
global states can derive every agent's observation.

Ant (gymnasium ``Ant-v5`` observation without contact forces, the 27 numbers D4RL's ``ant-*`` datasets keep):

====== ========================================================================================
index  meaning
====== ========================================================================================
0      torso height (qpos[2])
1-4    torso orientation quaternion (w, x, y, z) (qpos[3:7])
5-12   joint angles hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3, hip_4, ankle_4 (qpos[7:15])
13-15  torso linear velocity (x, y, z) (qvel[0:3])
16-18  torso angular velocity (qvel[3:6])
19-26  joint angular velocities, same joint order as 5-12 (qvel[6:14])
====== ========================================================================================

Leg ``k`` (joints hip_k, ankle_k) is angles ``5 + 2(k-1), 6 + 2(k-1)`` and velocities ``19 + 2(k-1), 20 + 2(k-1)``.

Reacher (gymnasium ``Reacher-v5`` observation, 10 numbers):

====== ================================================================================
index  meaning
====== ================================================================================
0, 1   cos θ1 (shoulder, joint0), cos θ2 (elbow, joint1)
2, 3   sin θ1, sin θ2
4, 5   target position (x, y)
6, 7   joint angular velocities θ1', θ2'
8, 9   fingertip - target (x, y)
====== ================================================================================

The elbow angle is ``atan2(state[3], state[1])`` (:func:`reacher_elbow_angle`), exact because the elbow's range is
[-3, 3] rad; θ2 > 0 is a counter-clockwise bend seen from above (MOMA-PPO Fig. 3b).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Indices = tuple[tuple[int, ...], ...]  # per agent: the state indices it observes

ANT_STATE_DIM = 27
ANT_TORSO: tuple[int, ...] = (0, 1, 2, 3, 4, 13, 14, 15, 16, 17, 18)
ANT_JOINT_ANGLE0, ANT_JOINT_VELOCITY0 = 5, 19  # state index of joint 0's (hip_1's) angle and velocity
ANT_STATE_FIELDS: dict[str, tuple[int, int]] = {  # name -> [start, stop) state indices
    "torso_height": (0, 1),
    "torso_orientation_wxyz": (1, 5),
    "joint_angles": (5, 13),
    "torso_linear_velocity": (13, 16),
    "torso_angular_velocity": (16, 19),
    "joint_velocities": (19, 27),
}

REACHER_STATE_DIM = 10
REACHER_COS, REACHER_SIN, REACHER_VELOCITY = (0, 1), (2, 3), (6, 7)  # per joint (shoulder, elbow)
REACHER_TARGET, REACHER_FINGERTIP_TO_TARGET = (4, 5), (8, 9)
REACHER_STATE_FIELDS: dict[str, tuple[int, int]] = {  # name -> [start, stop) state indices
    "cos_joint_angles": (0, 2),
    "sin_joint_angles": (2, 4),
    "target_position": (4, 6),
    "joint_velocities": (6, 8),
    "fingertip_minus_target": (8, 10),
}

# Observation functions per scenario, the fully observable one first (the default).
OBSERVATIONS: dict[str, tuple[str, ...]] = {
    "Ant": ("full", "partial"),
    "Reacher": ("all_observant", "independent", "leader_only"),
}
GENERIC_OBSERVATIONS: tuple[str, ...] = ("full", "local")  # every other scenario


def observation_names(scenario: str) -> tuple[str, ...]:
    """The observation functions ``scenario`` offers, the fully observable one first."""
    return OBSERVATIONS.get(scenario, GENERIC_OBSERVATIONS)


def full_observation(n_agents: int, state_dim: int) -> Indices:
    """Every agent observes the whole state."""
    return tuple(tuple(range(state_dim)) for _ in range(n_agents))


def ant_observation(observation: str, agent_joints: Sequence[Sequence[int]]) -> Indices:
    """Ant observation function ``full`` or ``partial``.

    ``agent_joints[i]``: the joints agent ``i`` controls, numbered 0-7 in state order (hip_1, ankle_1, ..., ankle_4).
    Under ``partial`` each agent observes the angles and velocities of its own joints, and the agent controlling
    hip_1 (leg 1, front left in MaMuJoCo's naming; the yellow limb of MOMA-PPO Fig. 3c, whose official split gives
    it the torso together with state indices 5, 6, 19, 20) also observes the torso (:data:`ANT_TORSO`).
    """
    if observation == "full":
        return full_observation(len(agent_joints), ANT_STATE_DIM)
    if observation != "partial":
        raise ValueError(f"Ant: unknown observation {observation!r}; choose one of {OBSERVATIONS['Ant']}")
    indices = []
    for joints in agent_joints:
        own = [ANT_JOINT_ANGLE0 + j for j in joints] + [ANT_JOINT_VELOCITY0 + j for j in joints]
        torso = list(ANT_TORSO) if 0 in joints else []
        indices.append(tuple(sorted(own + torso)))
    return tuple(indices)


def reacher_observation(observation: str, agent_joints: Sequence[Sequence[int]]) -> Indices:
    """Reacher observation function (MOMA-PPO §5.3); ``agent_joints[i]``: the joint (0 shoulder, 1 elbow) agent i moves.

    * ``all_observant`` (FO): the whole state.
    * ``independent`` (PO): own joint's cos, sin, velocity and the target position.
    * ``leader_only`` (PO): both joints; only the leader (the agent moving the shoulder) sees the target position.

    Under PO nobody sees the fingertip-to-target vector.
    """
    if sorted(len(j) for j in agent_joints) != [1, 1]:
        raise ValueError(
            f"Reacher observations need two agents with one joint each (agent_conf '2x1'), got {agent_joints}"
        )
    joint = [j[0] for j in agent_joints]

    def joint_indices(js: Sequence[int]) -> list[int]:
        return [idx[j] for j in js for idx in (REACHER_COS, REACHER_SIN, REACHER_VELOCITY)]

    if observation == "all_observant":
        return full_observation(2, REACHER_STATE_DIM)
    if observation == "independent":
        per_agent = [joint_indices([j]) + list(REACHER_TARGET) for j in joint]
    elif observation == "leader_only":
        per_agent = [joint_indices([0, 1]) + (list(REACHER_TARGET) if j == 0 else []) for j in joint]
    else:
        raise ValueError(f"Reacher: unknown observation {observation!r}; choose one of {OBSERVATIONS['Reacher']}")
    return tuple(tuple(sorted(idx)) for idx in per_agent)


def reacher_elbow_angle(state: np.ndarray) -> float | np.ndarray:
    """Elbow angle θ2 in radians from Reacher states ``[..., 10]`` -> ``[...]`` (a float for one state).

    θ2 > 0: counter-clockwise arm bend, θ2 < 0: clockwise (seen from above, MOMA-PPO Fig. 3b).
    """
    state = np.asarray(state)
    if state.shape[-1] != REACHER_STATE_DIM:
        raise ValueError(
            f"reacher_elbow_angle: states must end in {REACHER_STATE_DIM} numbers, got shape {state.shape}"
        )
    angle = np.arctan2(state[..., REACHER_SIN[1]], state[..., REACHER_COS[1]])
    return float(angle) if angle.ndim == 0 else angle


def structure_fields(structure: dict[str, int]) -> dict[str, tuple[int, int]]:
    """``[start, stop)`` state indices of each part of a gymnasium MuJoCo observation, from the task's
    ``observation_structure`` (part sizes in observation order; ``skipped_qpos`` counts positions left out)."""
    fields: dict[str, tuple[int, int]] = {}
    start = 0
    for name, size in structure.items():
        if name != "skipped_qpos" and size > 0:
            fields[name] = (start, start + size)
            start += size
    return fields
