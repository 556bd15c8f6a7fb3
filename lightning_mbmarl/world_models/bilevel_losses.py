"""Training loss of MABL's bi-level world model (§3.2): pure functions, computed in float32.

``L = L_ELBO + L_r + L_y + L_A + L_a`` with ``L_ELBO`` = observation reconstruction + the balanced KL of the agent
level + the balanced KL of the global level. As in the released code: every weight 1, terms are means (over steps
and agents, over steps and global latents for the global KL), no free nats, smooth-L1 reconstruction summed over
observation entries and smooth-L1 reward, Bernoulli continuation and availability, cross-entropy action decoder
(continuous actions: no availability term, a Gaussian action decoder).
The term functions are MAMBA's (:mod:`~lightning_mbmarl.world_models.rssm_losses`).
"""

from __future__ import annotations

import torch

from lightning_mbmarl.world_models.bilevel_rssm import BiLevelConfig, BiLevelState, BiLevelWorldModel
from lightning_mbmarl.world_models.rssm_losses import (
    kl_balanced,
    model_avail_loss,
    pcont_loss,
    per_agent_targets,
    reconstruction_loss,
    reward_loss,
)

TERMS = ("kl", "global_kl", "recon", "reward", "pcont", "avail", "info")


def _kl_terms(post: BiLevelState, prior: BiLevelState, balance: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Balanced KLs of both levels: agent ``[..., N]``, global ``[..., G]`` (None without a global level)."""
    agent = kl_balanced(post.agent.logits, prior.agent.logits, balance)
    upper = None if post.upper is None else kl_balanced(post.upper.logits, prior.upper.logits, balance)
    return agent, upper


def bilevel_world_model_loss(
    model: BiLevelWorldModel, batch: dict[str, torch.Tensor], config: BiLevelConfig | None = None
) -> dict[str, torch.Tensor]:
    """MABL's world-model loss on replay windows ``[B, L, ...]`` (``sample_sequences`` keys).

    Every transition ``t`` contributes, per agent: both levels' balanced KL between the posterior after
    ``(next_obs_t, next_state_t)`` and the transition prior, the reconstruction of ``next_obs_t``, the reward, the
    continuation (``1 - terminated``) and the next availability of that posterior, and the action decoder's
    cross-entropy of ``action_t`` in the state it was taken in. Each episode's first observation (``is_first``
    rows) adds both levels' KL to the reset prior, its reconstruction and its availability. Returns ``loss``
    (with gradients) and each term of :data:`TERMS` (detached means, for logging).
    """
    c = config or model.config
    seq = model.observe(batch)
    before, after = seq.start.features, seq.posterior.features
    agents = after.shape[:-1]  # [B, L, N]
    reward, continues = per_agent_targets(batch, c.reward_target, agents)
    kl, global_kl = _kl_terms(seq.posterior, seq.prior, c.kl_balance)
    agent_terms = {
        "kl": kl,
        "recon": reconstruction_loss(model.decode(after), batch["next_obs"], model.obs_mask),
        "reward": reward_loss(model.reward(after), reward),
        "pcont": pcont_loss(model.pcont_logit(after), continues),
        "avail": model_avail_loss(model, after, batch["next_avail"]),
        "info": model.actions.decoder_nll(model.action_decoder(before), batch["action"], model.action_mask),
    }
    sums = {name: term.sum() for name, term in agent_terms.items()}
    counts = dict.fromkeys(agent_terms, kl.numel())
    if global_kl is not None:
        sums["global_kl"], counts["global_kl"] = global_kl.sum(), global_kl.numel()

    first = batch["is_first"].bool()
    start = seq.start.map(lambda x: x[first])  # [M, N | G]: each episode's first state, posterior after its obs
    start_kl, start_global_kl = _kl_terms(start, model.reset_prior(start.agent.deter.shape[:-2]), c.kl_balance)
    features = start.features
    sums["kl"] = sums["kl"] + start_kl.sum()
    sums["recon"] = (
        sums["recon"] + reconstruction_loss(model.decode(features), batch["obs"][first], model.obs_mask).sum()
    )
    sums["avail"] = sums["avail"] + model_avail_loss(model, features, batch["avail"][first]).sum()
    if start_global_kl is not None:
        sums["global_kl"] = sums["global_kl"] + start_global_kl.sum()

    scales = {
        "kl": c.kl_scale,
        "global_kl": c.global_kl_scale,
        "recon": c.recon_scale,
        "reward": c.reward_scale,
        "pcont": c.pcont_scale,
        "avail": c.avail_scale,
        "info": c.info_scale,
    }
    out: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=after.device)
    for name in TERMS:
        mean = sums[name] / counts[name] if name in sums else torch.zeros((), device=after.device)
        loss = loss + scales[name] * mean
        out[name] = mean.detach()
    out["loss"] = loss
    return out
