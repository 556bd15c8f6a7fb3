"""Reference scores used to normalise returns, each with where it comes from. The one place they live.

References are looked up from an environment config (registry name and constructor options, see
:func:`reference_for`): MaMuJoCo tasks by scenario (``"mamujoco:Ant"``, ``"mamujoco:Reacher"``), whatever their
observation function and agent order, other environments by their registry name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReferenceScore:
    """Normalised score = (episode_return - random) / (expert - random); ``per_step`` divides by length first."""

    random: float
    expert: float
    per_step: bool  # normalise the mean per-step reward instead of the return
    source: str

    def normalize(self, episode_return: float, episode_length: int) -> float:
        """The normalised score of one episode of ``episode_length`` steps."""
        value = episode_return / max(episode_length, 1) if self.per_step else episode_return
        return (value - self.random) / (self.expert - self.random)


_RANDOM_SOURCE = (
    "random: mean return of {episodes} episodes of uniform random actions in [-1, 1] ({note}), measured with "
    "`python -m lightning_mbmarl dataset make mamujoco --scenario {scenario} --observation {observation} "
    "--policy random --episodes {episodes} --seed 0 --out <file>` (the 'episode return' mean it prints; env kwargs "
    "{{scenario: {scenario}, agent_conf: {agent_conf}, observation: {observation}}}: the v5 task's default reward "
    "weights and time limit), gymnasium-robotics 1.4.2, mujoco 4.0.0, gymnasium 1.3.0"
)
_ANT_EXPERT_SOURCE = (
    "expert: mean return of 100 greedy episodes (evaluation seed 12345, mean length 962.6) of policies/"
    "ant_expert.ckpt, online MAPPO after 2M environment steps of `python -m lightning_mbmarl fit --config "
    "conf/mappo_ant.yaml` (seed 0), measured with MultiAgentAlgorithm.evaluate(episodes=100, seed=12345) under full "
    "observability (the paper's D4RL expert, 3879.7, is gym Ant-v2 without contact cost)"
)

_REACHER_EXPERT_SOURCE = (
    "expert: mean of the two expert-mix teams' returns, each the mean of 100 greedy episodes (evaluation seed "
    "12345) measured with MultiAgentAlgorithm.evaluate(episodes=100, seed=12345): policies/reacher_cw.ckpt "
    "-4.1502 (online MAPPO, `python -m lightning_mbmarl fit --config conf/mappo_reacher.yaml --seed_everything=0`, "
    "1.5M steps) and policies/reacher_ccw.ckpt -4.3663 (the same with --seed_everything=1); the paper's is "
    "-4.237"
)

REFERENCE_SCORES: dict[str, ReferenceScore] = {
    # The Iterated Coordination Game's score is the mean per-step reward (MOMA-PPO paper, Tables 1 and 3):
    # 0 for a team that never agrees, 1 for a team that always does.
    "icg": ReferenceScore(random=0.0, expert=1.0, per_step=True, source="MOMA-PPO paper §5.2, Tables 1 and 3"),
    "mamujoco:Ant": ReferenceScore(
        random=-56.7737,
        expert=2204.3,
        per_step=False,
        source=_RANDOM_SOURCE.format(
            episodes=100,
            scenario="Ant",
            observation="full",
            agent_conf="4x2",
            note="episodes end when the torso leaves the healthy height range: mean "
            "length 155 steps; with contact_cost_weight=0.0 the mean is -56.5875",
        )
        + "; "
        + _ANT_EXPERT_SOURCE,
    ),
    "mamujoco:Reacher": ReferenceScore(
        random=-42.7589,
        expert=-4.2583,
        per_step=False,
        source=_RANDOM_SOURCE.format(
            episodes=100, scenario="Reacher", observation="all_observant", agent_conf="2x1", note="50-step episodes"
        )
        + "; "
        + _REACHER_EXPERT_SOURCE,
    ),
}


def reference_key(env_name: str, env_kwargs: dict[str, Any]) -> str:
    """The key of ``REFERENCE_SCORES`` for an environment config: ``"mamujoco:<scenario>"`` for MaMuJoCo (scenario
    default ``"Ant"``, as :class:`~lightning_mbmarl.envs.mamujoco.MaMuJoCoEnv`), else the registry name."""
    if env_name == "mamujoco":
        return f"mamujoco:{env_kwargs.get('scenario', 'Ant')}"
    return env_name


def reference_for(env_name: str, env_kwargs: dict[str, Any]) -> ReferenceScore | None:
    """The reference scores of an environment config (registry name and constructor options), None if it has none."""
    return REFERENCE_SCORES.get(reference_key(env_name, env_kwargs))
