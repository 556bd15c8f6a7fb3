"""Reference scores used to normalise returns, each with where it comes from. The one place they live."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceScore:
    """Normalised score = (episode_return - random) / (expert - random); ``per_step`` divides by length first."""

    random: float
    expert: float
    per_step: bool  # normalise the mean per-step reward instead of the return
    source: str


REFERENCE_SCORES: dict[str, ReferenceScore] = {
    # The Iterated Coordination Game's score is the mean per-step reward (MOMA-PPO paper, Tables 1 and 3):
    # 0 for a team that never agrees, 1 for a team that always does.
    "icg": ReferenceScore(random=0.0, expert=1.0, per_step=True, source="MOMA-PPO paper §5.2, Tables 1 and 3"),
}


def normalized_score(env_name: str, episode_return: float, episode_length: int) -> float:
    """The normalised score of one episode of environment ``env_name`` (a key of ``REFERENCE_SCORES``)."""
    if env_name not in REFERENCE_SCORES:
        raise KeyError(f"no reference scores for environment {env_name!r}; known: {sorted(REFERENCE_SCORES)}")
    ref = REFERENCE_SCORES[env_name]
    value = episode_return / max(episode_length, 1) if ref.per_step else episode_return
    return (value - ref.random) / (ref.expert - ref.random)
