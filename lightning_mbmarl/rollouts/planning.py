"""MAG's "planning to predict" (Wu et al., AAAI 2023, Algorithm 1 lines 10-12): before each imagined step the local
models plan which prediction to make, with the current joint policy playing the environment.

From a state ``s_t`` and the team's action ``a_t`` the transition prior is computed once (its deterministic part is
the same for every candidate) and sampled ``L`` times: ``L`` candidate predictions ``s^j_{t+1}``. Every candidate is
then rolled ``H - 1`` steps further with the policy acting under the predicted availability — all candidates of
all samples advance together, one batched transition per step. Each candidate is scored by its predicted
accumulated model error ``sum_{h=1..H} sum_i R̂_m^i(s^j_{t+h})`` and every sample takes the first-step prediction
of ITS lowest-scoring candidate (the released code took one argmin over the whole batch).

The look-ahead only chooses: it runs without gradients, and keeps each candidate state as its deterministic part
and the classes its categoricals sampled (:class:`LookAhead`) — the networks reading features ``[deter, one-hot
sample]`` (transition input, avail head, policy, R̂_m) take them through their first layer's weight rows
(:mod:`~lightning_mbmarl.nn.one_hot_input`) instead of multiplying by ``C * K`` mostly-zero columns; only sampled
actions are drawn from the policy (no log-probabilities). Same random draws, in the same order, as the plain
computation on dense features.

``PlanningConfig.lookahead_dtype = "bfloat16"`` scores the candidates with bf16 copies of the networks (made once per
rollout). The candidates themselves, and so the imagined states, are still the float32 model's samples; only which
one is kept can differ from a float32 look-ahead: where rounding reorders close scores, or flips one of a
candidate's sampled classes so that its scored future is another sample (tested: the choices are as good).
On a CPU with bf16 matmul instructions (AVX-512 BF16) it cut a plan's time by 44% (docs/results/mamba_mag.md); where bf16
matmul is emulated it is slower, and float32 is the better choice.

:class:`PlanningToPredict` makes a world model whose transition plans, so imagination
(:func:`~lightning_mbmarl.world_models.imagination.imagine`) and model-error rollouts run unchanged on it.

One look-ahead step of every candidate (:func:`lookahead_step`: the policy acts, the prior advances and samples, R̂_m
scores) is a no-grad function of fixed shapes that reads the networks' weights as inputs: the unit that
``PlanningToPredict(..., advance=...)`` takes compiled. MAG passes it through its fast path's ``compile`` (one graph;
``reduce-overhead`` asks for CUDA-graph capture on a GPU, not yet run on one), and since the weights are inputs,
every later rollout's look-ahead runs the same compiled step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch

from lightning_mbmarl.learners.policies import CategoricalPolicy, GaussianPolicy
from lightning_mbmarl.nn.one_hot_input import OneHotInputMLP
from lightning_mbmarl.world_models.model_reward import ModelRewardPredictor
from lightning_mbmarl.world_models.rssm import RSSMState, RSSMWorldModel, float_one_hot, sample_classes


@dataclass
class PlanningConfig:
    """Random-shooting planner of MAG (defaults: the released code's MPC settings)."""

    horizon: int = 6  # H: steps of each candidate trajectory scored by R̂_m (1: greedy one-step choice)
    candidates: int = 4  # L: candidate trajectories per sample
    within_rollout: bool = True  # look no further than the rollout's last step; False: always H steps (released)
    lookahead_dtype: Literal["float32", "bfloat16"] = "float32"  # precision of the look-ahead that scores candidates

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.candidates < 1:
            raise ValueError(
                f"PlanningConfig: horizon and candidates must be >= 1, got {self.horizon} and {self.candidates}"
            )
        if self.lookahead_dtype not in LOOKAHEAD_DTYPES:
            raise ValueError(
                f"PlanningConfig: lookahead_dtype must be one of {sorted(LOOKAHEAD_DTYPES)}, got "
                f"{self.lookahead_dtype!r}"
            )


LOOKAHEAD_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class Plan:
    """What :func:`plan_prediction` chose, for ``B`` samples and ``L`` candidates."""

    next_state: RSSMState  # [B, N]: the chosen first-step prediction of each sample
    choice: torch.Tensor  # int64 [B]: index of each sample's chosen candidate
    scores: torch.Tensor  # float32 [B, L]: predicted accumulated model error of each candidate
    first: RSSMState  # [B, L, N]: every candidate's first-step prediction


class LookAhead:
    """The networks a plan's look-ahead runs, on candidate states kept as ``deter [..., N, D]`` and sampled classes
    int64 ``[..., N, C]`` (their features ``[deter, one-hot(classes)]`` are never built).

    Holds copies of the first-layer weights of ``model``'s transition input and avail head and of ``predictor``,
    and with ``dtype`` other than float32 copies of all three networks in that precision: a snapshot for the
    imagination steps of one rollout (the weights do not change within one), used under ``torch.no_grad()``.
    """

    def __init__(
        self,
        model: RSSMWorldModel,
        predictor: ModelRewardPredictor,
        policy: CategoricalPolicy | GaussianPolicy,
        dtype: torch.dtype = torch.float32,
        advance: LookAheadStep | None = None,
    ) -> None:
        """``advance``: how :meth:`score` takes one step (default :func:`lookahead_step`; a compiled version of it)."""
        self.advance = advance or lookahead_step
        if dtype != torch.float32:
            model, predictor, policy = (copy.deepcopy(net).to(dtype) for net in (model, predictor, policy))
        self.model, self.policy, self.dtype = model, policy, dtype
        self.transition_input = OneHotInputMLP(model.transition_input)
        self.avail_head = OneHotInputMLP(model.avail_head) if model.actions.discrete else None
        self.error_net = OneHotInputMLP(predictor.net)
        c = model.config
        self.class_columns = c.classes * torch.arange(c.categoricals, device=model.obs_mask.device)  # [C]

    def _hot(self, deter: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Columns of the features ``[deter, one-hot(classes)]`` that hold a 1: int64 ``[..., N, C]``."""
        return deter.shape[-1] + self.class_columns + classes

    def _on_features(self, net: OneHotInputMLP, deter: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``net`` on the features of ``(deter [..., N, D], classes [..., N, C])``: ``[..., N, out]``."""
        hot = self._hot(deter, classes)
        out = net(deter.reshape(1, -1, deter.shape[-1]), hot.reshape(1, -1, hot.shape[-1]))
        return out.view(*deter.shape[:-1], -1)

    def team_error(self, deter: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """R̂_m summed over agents, float32 ``[...]``."""
        return self._on_features(self.error_net, deter, classes).squeeze(-1).float().sum(dim=-1)

    def act(self, deter: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The policy's sampled actions (int64 ``[..., N]``, or continuous ``[..., N, A]``) under the predicted
        availability."""
        model = self.model
        if self.avail_head is None:
            avail = model.actions.all_available(deter.shape[:-2], model.action_mask)
        else:
            avail = model.avail_from_logits(self._on_features(self.avail_head, deter, classes))
        return self.policy.forward_one_hot(deter, self._hot(deter, classes), avail).sample()

    def score(self, deter: torch.Tensor, classes: torch.Tensor, horizon: int) -> torch.Tensor:
        """Predicted accumulated model error of candidate states ``(deter [..., N, D], classes [..., N, C])`` over
        ``horizon`` steps, the policy acting from the second on (one sampled future each): float32 ``[...]``."""
        deter = deter.to(self.dtype)
        scores = self.team_error(deter, classes)
        for _ in range(horizon - 1):
            deter, classes, errors = self.advance(self, deter, classes)
            scores = scores + errors
        return scores

    def step(
        self, deter: torch.Tensor, classes: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The transition prior after actions (int64 ``[..., N]``, or continuous ``[..., N, A]``, the dense first
        columns of the transition input): the next ``(deter, classes)``."""
        model = self.model
        hot = model.action_dim + self.class_columns + classes
        if model.actions.discrete:
            dense, hot = None, torch.cat([actions.unsqueeze(-1), hot], dim=-1)
        else:
            dense = model.actions.inputs(actions).to(self.dtype).reshape(1, -1, model.action_dim)
        x = self.transition_input(dense, hot.reshape(1, -1, hot.shape[-1])).view(*hot.shape[:-1], -1)
        deter = model.advance(x, deter)
        logits = model.prior_head(deter).unflatten(-1, (model.config.categoricals, model.config.classes))
        return deter, sample_classes(logits)


def lookahead_step(
    look: LookAhead, deter: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One look-ahead step of candidate states ``(deter [..., N, D], classes [..., N, C])``: the policy acts under the
    predicted availability, the transition prior advances and samples, and R̂_m scores the new states. Returns the
    next ``(deter, classes)`` and their team error, float32 ``[...]``."""
    deter, classes = look.step(deter, classes, look.act(deter, classes))
    return deter, classes, look.team_error(deter, classes)


LookAheadStep = Callable[[LookAhead, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@torch.no_grad()
def plan_prediction(
    model: RSSMWorldModel,
    predictor: ModelRewardPredictor,
    policy: CategoricalPolicy | GaussianPolicy,
    state: RSSMState,
    actions: torch.Tensor,
    horizon: int,
    candidates: int,
    look: LookAhead | None = None,
) -> Plan:
    """Plan the prediction for ``state [B, N]`` under action inputs ``actions [B, N, A]`` with ``candidates``
    trajectories of ``horizon`` steps (see the module docstring); ``policy`` samples the candidates' later actions.

    ``look``: the look-ahead networks (default: float32 ones built here). The candidates' first step, which the
    chosen prediction is, always runs on ``model`` itself; only their scoring runs in ``look``'s precision.
    """
    if state.deter.dim() != 3:
        raise ValueError(f"plan_prediction: expected states [B, N, D], got deter {tuple(state.deter.shape)}")
    B, L = state.deter.shape[0], candidates
    step = model.imagine_step(state, actions)  # [B, N]: deter and prior logits shared by the candidates
    logits = step.logits.unsqueeze(1).expand(-1, L, *step.logits.shape[1:])
    deter, classes = step.deter.unsqueeze(1).expand(-1, L, *step.deter.shape[1:]), sample_classes(logits)
    first = RSSMState(deter, float_one_hot(classes, logits.shape[-1]).flatten(-2), logits)  # [B, L, N]
    scores = (look or LookAhead(model, predictor, policy)).score(deter, classes, horizon)  # [B, L]
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
        predictor: ModelRewardPredictor,
        policy: CategoricalPolicy | GaussianPolicy,
        config: PlanningConfig,
        rollout_length: int,
        advance: LookAheadStep | None = None,
    ) -> None:
        """``advance``: the look-ahead's step (default :func:`lookahead_step`; MAG passes it compiled by its fast
        path)."""
        self.model, self.predictor, self.policy, self.config = model, predictor, policy, config
        self.rollout_length, self.steps_taken = rollout_length, 0
        with torch.no_grad():  # one look-ahead per rollout: the weights are fixed within one
            self.look = LookAhead(model, predictor, policy, LOOKAHEAD_DTYPES[config.lookahead_dtype], advance)

    def imagine_step(self, state: RSSMState, actions: torch.Tensor) -> RSSMState:
        """The planned prediction ``[B, N]`` after ``state [B, N]`` and action inputs ``[B, N, A]``."""
        horizon = self.config.horizon
        if self.config.within_rollout:
            horizon = max(1, min(horizon, self.rollout_length - self.steps_taken))
        self.steps_taken += 1
        plan = plan_prediction(
            self.model, self.predictor, self.policy, state, actions, horizon, self.config.candidates, self.look
        )
        return plan.next_state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
