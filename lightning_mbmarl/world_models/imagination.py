"""Imagined rollouts in the RSSM world model: a policy acts on latent features, the transition prior answers.

All start states advance together (one transition pass per imagined step). Availability comes from the world
model's avail head (:meth:`RSSMWorldModel.predict_avail`), so the policy never picks a choice the model deems
unavailable. Continuous actions enter the model clipped to the action box (``model.actions.inputs``) while the
rollout keeps the policy's own samples, whose log-probabilities PPO needs. Gradients are not stopped here: PPO-style learners call :func:`imagine` under ``torch.no_grad()``.
"""

from __future__ import annotations

from typing import Callable

import torch

from lightning_mbmarl.world_models.rssm import RSSMState, RSSMWorldModel

# (features [..., N, F], avail bool [..., N, A]) -> (actions: int64 [..., N] or continuous [..., N, A], log-probs [..., N])
LatentPolicy = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def imagine(
    model: RSSMWorldModel, policy_fn: LatentPolicy, start_states: RSSMState, horizon: int
) -> dict[str, torch.Tensor]:
    """Roll the prior forward ``horizon`` steps from ``start_states`` ``[B', N]`` (e.g. every posterior of a replay
    batch, flattened: ``observed.posterior.map(lambda x: x.flatten(0, 1))``).

    Returns, time first:

    * ``features`` ``[H + 1, B', N, F]``: states ``s_0 .. s_H`` (``s_H`` for bootstrapping values),
    * ``avail`` bool ``[H, B', N, A]``: predicted availability the policy acted under in ``s_h``,
    * ``actions`` int64 ``[H, B', N]`` (continuous: ``[H, B', N, A]``, as sampled) and ``log_probs`` ``[H, B', N]``:
      the policy's choices in ``s_h``,
    * ``rewards`` float32 ``[H, B', N]``: each agent's predicted reward of the step ``s_h -> s_{h+1}`` (MAMBA's team
      reward is their mean over agents),
    * ``discounts`` float32 ``[H, B', N]``: predicted probability that the episode continues from ``s_{h+1}``
      (multiply by gamma for the return's discount).
    """
    if horizon < 1:
        raise ValueError(f"imagine: horizon must be >= 1, got {horizon}")
    state = start_states
    features = [state.features]
    avails, actions, log_probs, rewards, discounts = [], [], [], [], []
    for _ in range(horizon):
        avail = model.predict_avail(features[-1])
        action, log_prob = policy_fn(features[-1], avail)
        state = model.imagine_step(state, model.actions.inputs(action))
        features.append(state.features)
        avails.append(avail)
        actions.append(action)
        log_probs.append(log_prob)
        rewards.append(model.reward(features[-1]).float())
        discounts.append(model.pcont_logit(features[-1]).float().sigmoid())
    return {
        "features": torch.stack(features),
        "avail": torch.stack(avails),
        "actions": torch.stack(actions),
        "log_probs": torch.stack(log_probs),
        "rewards": torch.stack(rewards),
        "discounts": torch.stack(discounts),
    }
