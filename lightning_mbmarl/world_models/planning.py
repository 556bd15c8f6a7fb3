"""MAG's "planning to predict" (Wu et al., AAAI 2023, Algorithm 1 lines 10-12): before each imagined step the local
models plan which prediction to make, with the current joint policy playing the environment.

From a state ``s_t`` and the team's action ``a_t`` the transition prior is computed once (its deterministic part is
the same for every candidate) and sampled ``L`` times: ``L`` candidate predictions ``s^j_{t+1}``. Every candidate is
then rolled ``H - 1`` steps further with the policy acting under the predicted availability — all candidates of
all samples advance together, one batched transition per step (``imagine_step`` with a candidate axis). Each
candidate is scored by its predicted accumulated model error ``sum_{h=1..H} sum_i R̂_m^i(s^j_{t+h})`` and every
sample takes the first-step prediction of ITS lowest-scoring candidate (the released code took one argmin over the
whole batch).

:class:`PlanningToPredict` makes a world model whose transition plans, so imagination
(:func:`~lightning_mbmarl.world_models.imagination.imagine`) and model-error rollouts run unchanged on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from lightning_mbmarl.world_models.imagination import LatentPolicy
from lightning_mbmarl.world_models.rssm import RSSMState, RSSMWorldModel, straight_through_sample

# features [..., N, F] -> predicted per-agent model error [..., N] (e.g. a ModelRewardPredictor)
ErrorPredictor = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PlanningConfig:
    """Random-shooting planner of MAG (defaults: the released code's MPC settings)."""

    horizon: int = 6  # H: steps of each candidate trajectory scored by R̂_m (1: greedy one-step choice)
    candidates: int = 4  # L: candidate trajectories per sample
    within_rollout: bool = True  # look no further than the rollout's last step; False: always H steps (released)

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.candidates < 1:
            raise ValueError(f"PlanningConfig: horizon and candidates must be >= 1, got {self.horizon} and "
                             f"{self.candidates}")


@dataclass
class Plan:
    """What :func:`plan_prediction` chose, for ``B`` samples and ``L`` candidates."""

    next_state: RSSMState  # [B, N]: the chosen first-step prediction of each sample
    choice: torch.Tensor  # int64 [B]: index of each sample's chosen candidate
    scores: torch.Tensor  # float32 [B, L]: predicted accumulated model error of each candidate
    first: RSSMState  # [B, L, N]: every candidate's first-step prediction


def plan_prediction(
    model: RSSMWorldModel,
    predict_error: ErrorPredictor,
    policy: LatentPolicy,
    state: RSSMState,
    actions: torch.Tensor,
    horizon: int,
    candidates: int,
) -> Plan:
    """Plan the prediction for ``state [B, N]`` under action one-hots ``actions [B, N, A]`` with ``candidates``
    trajectories of ``horizon`` steps (see the module docstring).

    Run it under ``torch.no_grad()``; ``policy`` samples the candidates' later actions.
    """
    if state.deter.dim() != 3:
        raise ValueError(f"plan_prediction: expected states [B, N, D], got deter {tuple(state.deter.shape)}")
    B, L = state.deter.shape[0], candidates
    step = model.imagine_step(state, actions)  # [B, N]: deter and prior logits shared by the candidates
    logits = step.logits.unsqueeze(1).expand(-1, L, *step.logits.shape[1:])
    first = RSSMState(step.deter.unsqueeze(1).expand(-1, L, *step.deter.shape[1:]), straight_through_sample(logits),
                      logits)
    candidate, features = first, first.features  # [B, L, N, F]
    scores = predict_error(features).float().sum(dim=-1)  # [B, L]
    for _ in range(horizon - 1):
        action, _ = policy(features, model.predict_avail(features))
        candidate = model.imagine_step(candidate, F.one_hot(action, model.action_dim).float())
        features = candidate.features
        scores = scores + predict_error(features).float().sum(dim=-1)
    choice = scores.argmin(dim=1)  # one choice per sample
    rows = torch.arange(B, device=choice.device)
    return Plan(first.map(lambda x: x[rows, choice]), choice, scores, first)


class PlanningToPredict:
    """A world model whose transition plans (MAG): :meth:`imagine_step` returns :func:`plan_prediction`'s choice.

    Every other attribute (heads, availability, sizes) is the wrapped model's, so anything written for an
    :class:`RSSMWorldModel`'s rollouts runs on it unchanged. States must be ``[B, N]``.

    One instance serves one rollout of ``rollout_length`` steps: its ``t``-th :meth:`imagine_step` call is step ``t``.
    With ``config.within_rollout`` the plan at step ``t`` looks ``min(H, rollout_length - t)`` steps ahead: MAG's
    model MMDP ends with the rollout, so errors past its last step are not part of the objective.
    """

    def __init__(
        self,
        model: RSSMWorldModel,
        predict_error: ErrorPredictor,
        policy: LatentPolicy,
        config: PlanningConfig,
        rollout_length: int,
    ) -> None:
        self.model, self.predict_error, self.policy, self.config = model, predict_error, policy, config
        self.rollout_length, self.steps_taken = rollout_length, 0

    def imagine_step(self, state: RSSMState, actions: torch.Tensor) -> RSSMState:
        """The planned prediction ``[B, N]`` after ``state [B, N]`` and action one-hots ``[B, N, A]``."""
        horizon = self.config.horizon
        if self.config.within_rollout:
            horizon = max(1, min(horizon, self.rollout_length - self.steps_taken))
        self.steps_taken += 1
        plan = plan_prediction(self.model, self.predict_error, self.policy, state, actions, horizon,
                               self.config.candidates)
        return plan.next_state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
