"""Branched rollouts of the team's current policies in an ensemble world model (MOMA-PPO, Algorithm 1).

From ``b`` dataset start states (with their agents' action-observation histories) the policies act for at most
``k`` steps in the model. Each step is penalised by the model's epistemic uncertainty,
``r~ = r_bar - lambda_r eps_r - lambda_g eps_g`` (uncertainties clamped at ``l_eps`` for the penalty), and a rollout
times out (ζ = 0) at its last step or as soon as the *raw* ``eps_g >= l_eps``, so the timeout really fires (the
released code clamps before comparing, so its timeout never fires). Steps after a timeout or a predicted
terminal state are dropped; GAE with the terminal and timeout masks keeps returns from leaking across the cut.
"""

from __future__ import annotations

import torch

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.learners.gae import timeout_gae
from lightning_mbmarl.learners.mappo import MAPPOActorCritic
from lightning_mbmarl.learners.memory import push_history
from lightning_mbmarl.world_models.model_env import EnsembleModelEnv

HISTORY_KEYS = ("history_obs", "history_action", "history_mask")


@torch.no_grad()
def ensemble_rollouts(
    policy: MAPPOActorCritic,
    model_env: EnsembleModelEnv,
    observer: StateObserver,
    spec: EnvSpec,
    start: dict[str, torch.Tensor],
    horizon: int,
    reward_uncertainty_coef: float,
    uncertainty_coef: float,
    gamma: float,
    gae_lambda: float,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Generate rollouts from ``start`` and compute their advantages and returns.

    start: {state [b, S], obs [b, N, O], avail [b, N, A], history_obs [b, N, H, O], history_action [b, N, H, A],
    history_mask [b, H]}.

    Returns ``(transitions, stats)``: transitions are the ``M <= b * horizon`` kept steps, flattened, with the keys
    MAPPO's loss reads (state, obs, avail, history_*, action, old_log_prob, advantage, return); stats are means
    for logging (rollout length, timeout and terminal rates, uncertainties, rewards). The timeout threshold l_eps
    is the model environment's; ``reward_uncertainty_coef`` and ``uncertainty_coef`` are lambda_r and lambda_g.
    """
    state, obs, avail = start["state"], start["obs"], start["avail"]
    history = {k: start[k] for k in HISTORY_KEYS}
    b = state.shape[0]
    alive = torch.ones(b, dtype=torch.bool, device=state.device)
    steps: list[dict[str, torch.Tensor]] = []
    for j in range(horizon):
        actions, log_prob = policy.act(obs, avail, *(history[k] for k in HISTORY_KEYS))
        features = encode_actions(actions, spec)
        step = model_env.step(state, features)
        reward = step.penalized_reward(reward_uncertainty_coef, uncertainty_coef)
        timeout = step.exceeded if j < horizon - 1 else torch.ones_like(step.exceeded)
        steps.append(
            {
                "state": state,
                "obs": obs,
                "avail": avail,
                **history,
                "action": actions,
                "old_log_prob": log_prob,
                "reward": reward,
                "model_reward": step.reward,
                "terminal": step.terminal,
                "timeout": timeout,
                "alive": alive,
                "uncertainty": step.uncertainty,
                "reward_uncertainty": step.reward_uncertainty,
            }
        )
        history = dict(zip(HISTORY_KEYS, push_history(*(history[k] for k in HISTORY_KEYS), obs, features)))
        alive = alive & ~timeout & ~step.terminal
        state = step.next_state
        obs, avail = observer.observe(state), observer.available(state)
    final = {"state": state, "obs": obs, **history}

    # Values of every visited state and of the last next state: V(s_j) for j = 0..k.
    value_inputs = {k: torch.cat([s[k] for s in steps] + [final[k]]) for k in ("state", "obs", *HISTORY_KEYS)}
    values = policy.value(*(value_inputs[k] for k in ("state", "obs", *HISTORY_KEYS))).float().view(horizon + 1, b)
    stacked = {k: torch.stack([s[k] for s in steps]) for k in steps[0]}  # [k, b, ...]
    advantages, returns = timeout_gae(
        rewards=stacked["reward"].float(),
        values=values[:-1],
        next_values=values[1:],
        masks=1.0 - stacked["terminal"].float(),
        timeout_masks=1.0 - stacked["timeout"].float(),
        gamma=gamma,
        lam=gae_lambda,
    )
    keep = stacked["alive"]
    transitions = {k: stacked[k][keep] for k in ("state", "obs", "avail", *HISTORY_KEYS, "action", "old_log_prob")}
    transitions["advantage"] = advantages[keep]
    transitions["return"] = returns[keep]
    kept = keep.float()
    n = kept.sum().clamp(min=1.0)
    stats = {
        "rollout_length": float(kept.sum() / b),
        "uncertainty_timeout_rate": float((stacked["timeout"] & keep)[:-1].float().sum() / b),
        "terminal_rate": float((stacked["terminal"] & keep).float().sum() / b),
        "uncertainty": float((stacked["uncertainty"] * kept).sum() / n),
        "reward_uncertainty": float((stacked["reward_uncertainty"] * kept).sum() / n),
        "model_reward": float((stacked["model_reward"] * kept).sum() / n),
        "penalized_reward": float((stacked["reward"] * kept).sum() / n),
    }
    return transitions, stats
