"""Training loss of the RSSM world model (MAMBA): pure functions, computed in float32.

Each term is per agent and per transition (``[B, L, N]``); :func:`world_model_loss` averages them. MAMBA's
choices: KL balancing without free nats, averaged over the categoricals; smooth-L1 reconstruction summed over
observation entries; smooth-L1 reward; Bernoulli continuation and available-action terms; cross-entropy of the
action decoder ("info" term, which keeps each agent's latent informative about its own action). Continuous actions
(:mod:`~lightning_mbmarl.world_models.action_format`): no availability term, a Gaussian action decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_mbmarl.world_models.rssm import RSSMConfig, RSSMState, RSSMWorldModel

TERMS = ("kl", "recon", "reward", "pcont", "avail", "info")


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of each categorical: ``[..., C, K] x 2 -> [..., C]``."""
    p_log = p_logits.float().log_softmax(dim=-1)
    q_log = q_logits.float().log_softmax(dim=-1)
    return (p_log.exp() * (p_log - q_log)).sum(dim=-1)


def kl_balanced(post_logits: torch.Tensor, prior_logits: torch.Tensor, balance: float = 0.8) -> torch.Tensor:
    """``balance * KL(sg(post) || prior) + (1 - balance) * KL(post || sg(prior))``, mean over categoricals.

    ``[..., C, K] x 2 -> [...]``. The first part only moves the prior, the second only the posterior; the value is
    KL(post || prior) whatever the balance.
    """
    train_prior = categorical_kl(post_logits.detach(), prior_logits).mean(dim=-1)
    train_post = categorical_kl(post_logits, prior_logits.detach()).mean(dim=-1)
    return balance * train_prior + (1.0 - balance) * train_post


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, obs_mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 summed over each agent's real observation entries: ``[..., N, O] -> [..., N]``.

    obs_mask: bool ``[N, O]`` (``EnvSpec.observation_mask``).
    """
    error = F.smooth_l1_loss(pred.float(), target.float(), reduction="none")
    return torch.where(obs_mask, error, 0.0).sum(dim=-1)


def per_agent_targets(
    batch: dict[str, torch.Tensor], reward_target: str, agents: torch.Size
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each agent's reward and continuation targets, both ``[B, L, N]`` (``agents``).

    The reward is the agent's own (``agent_rewards``) or the team's repeated over agents (``reward_target`` "agent"
    or "team", as ``RSSMConfig.reward_target``); the continuation ``1 - terminated`` is the episode's, the same for
    every agent.
    """
    team = batch["reward"].unsqueeze(-1).expand(agents)
    reward = team if reward_target == "team" else batch["agent_rewards"]
    continues = (1.0 - batch["terminated"].float()).unsqueeze(-1).expand(agents)
    return reward, continues


def reward_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 per element (``[..., N] -> [..., N]``)."""
    return F.smooth_l1_loss(pred.float(), target.float(), reduction="none")


def pcont_loss(logit: torch.Tensor, continues: torch.Tensor) -> torch.Tensor:
    """Bernoulli NLL of continuing (``1 - terminated``) per element (``[..., N] -> [..., N]``)."""
    return F.binary_cross_entropy_with_logits(logit.float(), continues.float(), reduction="none")


def avail_loss(logits: torch.Tensor, avail: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
    """Bernoulli NLL summed over each agent's real choices: ``[..., N, A] -> [..., N]``."""
    nll = F.binary_cross_entropy_with_logits(logits.float(), avail.float(), reduction="none")
    return torch.where(action_mask, nll, 0.0).sum(dim=-1)


def model_avail_loss(model, features: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """``model``'s availability term on ``features [..., N, F]`` against ``avail`` ``[..., N, A]``: ``[..., N]``;
    zeros where the actions are continuous (no avail head, every dimension always available)."""
    if not model.actions.discrete:
        return features.new_zeros(features.shape[:-1], dtype=torch.float32)
    return avail_loss(model.avail_logits(features), avail, model.action_mask)


def episode_start_terms(
    model: RSSMWorldModel, start: RSSMState, batch: dict[str, torch.Tensor], kl_balance: float
) -> dict[str, torch.Tensor]:
    """Sums over each episode's first observation (``is_first`` rows of ``batch``) of its KL to the reset prior, its
    reconstruction and its availability term: scalars ``kl``, ``recon``, ``avail``.

    ``start``: the states ``[B, L, N]`` the actions were taken in (the posteriors after ``obs``). Only the
    ``is_first`` rows are evaluated; under ``torch.compile`` every row is, masked, so shapes do not depend on the data.
    """
    first = batch["is_first"].bool()
    if torch.compiler.is_compiling():
        weight = first.float().unsqueeze(-1)  # [B, L, 1]
        rows, obs, avail = start, batch["obs"], batch["avail"]
    else:
        weight = None
        rows, obs, avail = start.map(lambda x: x[first]), batch["obs"][first], batch["avail"][first]  # [M, N]
    features = rows.features
    terms = {
        "kl": kl_balanced(rows.logits, model.reset_prior(rows.deter.shape[:-2]).logits, kl_balance),
        "recon": reconstruction_loss(model.decode(features), obs, model.obs_mask),
        "avail": model_avail_loss(model, features, avail),
    }
    return {name: (term if weight is None else term * weight).sum() for name, term in terms.items()}


def world_model_loss(
    model: RSSMWorldModel, batch: dict[str, torch.Tensor], config: RSSMConfig | None = None
) -> dict[str, torch.Tensor]:
    """MAMBA's world-model loss on replay windows ``[B, L, ...]`` (``sample_sequences`` keys).

    Every transition ``t`` (``obs_t, action_t -> next_obs_t``) contributes, per agent: the balanced KL between the
    posterior after ``next_obs_t`` and the transition prior, the reconstruction of ``next_obs_t``, the reward, the
    continuation (``1 - terminated``), the next availability mask and the info term (``action_t`` from the features
    before and after). Each episode's first observation (``is_first`` rows) adds its KL to the reset prior, its
    reconstruction and its availability. Terms are averaged over ``B * L * N`` and weighted by ``config``'s scales
    (default: ``model.config``).

    Returns ``loss`` (scalar, with gradients), each term of :data:`TERMS` (detached scalar means, for logging) and
    ``model_error`` ``[B, L, N]``: the weighted sum of the transition terms per step and agent, without gradients
    (MAG's model-error labels).
    """
    c = config or model.config
    scales = {
        "kl": c.kl_scale,
        "recon": c.recon_scale,
        "reward": c.reward_scale,
        "pcont": c.pcont_scale,
        "avail": c.avail_scale,
        "info": c.info_scale,
    }
    seq = model.observe(batch)
    before, after = seq.start.features, seq.posterior.features
    agents = after.shape[:-1]  # [B, L, N]
    reward, continues = per_agent_targets(batch, c.reward_target, agents)
    transition = {
        "kl": kl_balanced(seq.posterior.logits, seq.prior.logits, c.kl_balance),
        "recon": reconstruction_loss(model.decode(after), batch["next_obs"], model.obs_mask),
        "reward": reward_loss(model.reward(after), reward),
        "pcont": pcont_loss(model.pcont_logit(after), continues),
        "avail": model_avail_loss(model, after, batch["next_avail"]),
        "info": model.actions.decoder_nll(model.action_decoder(before, after), batch["action"], model.action_mask),
    }
    episode_start = episode_start_terms(model, seq.start, batch, c.kl_balance)
    count = transition["kl"].numel()
    out: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=after.device)
    for name in TERMS:
        total = transition[name].sum()
        if name in episode_start:
            total = total + episode_start[name]
        mean = total / count
        loss = loss + scales[name] * mean
        out[name] = mean.detach()
    out["loss"] = loss
    out["model_error"] = sum(scales[name] * transition[name] for name in TERMS).detach()
    return out
