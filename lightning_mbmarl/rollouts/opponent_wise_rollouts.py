"""Adaptive opponent-wise rollouts (AORPO Algorithm 1, lines 8-20), for every ego agent at once.

Each ego ``i`` branches ``k`` steps from real start states in its own dynamics model. At rollout step ``p`` it acts
with its policy conditioned on its opponent models' predictions (Eq. 4); opponent ``j`` acts through ego ``i``'s
model of it while ``p <= n^i_j``, and after that through the real agent ``j`` (a communication: ego ``i`` sends the
simulated state, agent ``j`` answers with its own policy, itself conditioned on its own opponent models).

All egos advance together: tensors carry a leading ego axis ``[N, B, ...]``; the policies and opponent models see
the ``N B`` simulated teams as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.world_models.ego_ensembles import EgoEnsembles
from lightning_mbmarl.world_models.opponent_models import OpponentModels, ego_opponent_features

#: (obs [M, N, O], avail [M, N, A], opponent_action_features [M, N, (N-1) A]) -> team actions (every agent's own policy)
ConditionedPolicy = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class RolloutResult:
    """Model transitions (flat ``[M, ...]`` with ``ego`` [M] saying whose rollout each one is), the number of real
    opponent queries made, and the number of model steps generated."""

    transitions: dict[str, torch.Tensor]
    communications: int
    model_steps: int


@torch.no_grad()
def opponent_wise_rollouts(
    policy: ConditionedPolicy,
    opponent_models: OpponentModels,
    dynamics: EgoEnsembles,
    observer: StateObserver,
    spec: EnvSpec,
    start_state: torch.Tensor,
    horizon: int,
    model_steps: torch.Tensor,
) -> RolloutResult:
    """Roll every ego out for ``horizon`` steps from ``start_state`` [B, S].

    ``model_steps`` int64 [N, N]: ``n^i_j``, the steps ego ``i`` uses its model of opponent ``j`` before querying the
    real ``j`` (:func:`~lightning_mbmarl.world_models.opponent_models.adaptive_rollout_lengths`; ``horizon``
    everywhere: opponent models only; 0: real opponents only). Rollouts stop at predicted terminal states.
    """
    n = spec.n_agents
    B = start_state.shape[0]
    device = start_state.device
    eye = torch.eye(n, dtype=torch.bool, device=device)
    egos = torch.arange(n, device=device)
    state = start_state.unsqueeze(0).expand(n, B, -1).clone()  # [N_ego, B, S]
    alive = torch.ones(n, B, dtype=torch.bool, device=device)
    steps, communications = [], 0
    for p in range(1, horizon + 1):
        obs, avail = observer.observe(state), observer.available(state)  # [N_ego, B, N, ...]
        flat_obs, flat_avail = obs.flatten(0, 1), avail.flatten(0, 1)
        predicted = encode_actions(opponent_models.predict(flat_obs, flat_avail), spec)  # [N_ego B, N_pred, N, A]
        conditioning = ego_opponent_features(predicted)  # [N_ego B, N, (N-1) A]: each agent's own predictions
        real = encode_actions(policy(flat_obs, flat_avail, conditioning), spec).view(n, B, n, -1)
        # In ego i's rollout, opponent j comes from ego i's model of j while p <= n^i_j, else from the real agent j.
        egos_predictions = predicted.view(n, B, n, n, -1)[egos, :, egos]  # [N_ego, B, N, A]
        use_model = (p <= model_steps) & ~eye  # [N_ego, N]
        joint = torch.where(use_model[:, None, :, None], egos_predictions, real)
        communications += int(((~use_model & ~eye).sum(1) * alive.sum(1)).sum())
        next_state, reward, terminal = dynamics.step(state, joint.flatten(-2))
        steps.append(
            {
                "state": state,
                "obs": obs,
                "avail": avail,
                "action_features": joint,
                "agent_rewards": reward.unsqueeze(-1).expand(n, B, n),
                "terminal": terminal.float(),
                "next_state": next_state,
                "next_obs": observer.observe(next_state),
                "next_avail": observer.available(next_state),
                "opponent_action_features": conditioning.view(n, B, n, -1),
                "ego": egos.unsqueeze(1).expand(n, B),
                "alive": alive,
            }
        )
        alive = alive & ~terminal
        state = next_state
    stacked = {k: torch.stack([s[k] for s in steps]) for k in steps[0]}  # [k, N_ego, B, ...]
    keep = stacked.pop("alive")
    transitions = {k: v[keep] for k, v in stacked.items()}
    return RolloutResult(transitions, communications, int(keep.sum()))
