"""Opponent models of AORPO (§5.1): each ego agent ``i`` models the policy of every other agent ``j`` as
``π̂^i_j(a_j | o_j)``, a Gaussian over continuous actions or a masked categorical over discrete ones, trained on
real data by maximum likelihood with an entropy bonus (the released code adds ``0.1 log π̂``).

The ``P = N (N - 1)`` (ego, opponent) pairs are groups of one batched MLP, evaluated in one pass. Pair ``p``
reads the observation of its opponent ``opponents[p]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.nn.distributions import Distribution, MaskedCategorical, PaddedGaussian
from lightning_mbmarl.nn.batched import BatchedMLP


@dataclass
class OpponentModelConfig:
    """Architecture and training of the opponent models."""

    hidden: tuple[int, ...] = (64, 64)  # hidden sizes of each opponent model
    learning_rate: float = 1e-3  # Adam step size
    entropy_coef: float = 0.1  # weight of the entropy bonus in the loss (released code's 0.1 log-pi term)
    min_std: float = 1e-2  # lower bound of a Gaussian opponent model's std


class OpponentModels(nn.Module):
    """``π̂^i_j`` for every ordered pair ``i != j``; outputs are laid out ``[..., N_ego, N, A]`` (diagonal unused)."""

    def __init__(self, spec: EnvSpec, config: OpponentModelConfig) -> None:
        super().__init__()
        n = spec.n_agents
        if n < 2:
            raise ValueError("opponent models need at least two agents")
        self.spec, self.config = spec, config
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        self.register_buffer("egos", torch.tensor([i for i, _ in pairs]), persistent=False)
        self.register_buffer("opponents", torch.tensor([j for _, j in pairs]), persistent=False)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask())[self.opponents], persistent=False)
        out = spec.action_dim * (1 if spec.discrete else 2)
        self.net = BatchedMLP(len(pairs), spec.obs_dim, out, config.hidden)

    @property
    def pairs(self) -> int:
        return int(self.egos.numel())

    def distribution(self, obs: torch.Tensor, avail: torch.Tensor) -> Distribution:
        """Distributions over the opponents' actions for every pair: batch shape ``[B, P]``.

        obs [B, N, O], avail bool [B, N, A] (the opponents' rows are used).
        """
        x = obs[:, self.opponents].transpose(0, 1)  # [P, B, O]
        out = self.net(x).transpose(0, 1).float()  # [B, P, out]
        if self.spec.discrete:
            return MaskedCategorical(out, avail[:, self.opponents])
        mean, raw_std = out.chunk(2, dim=-1)
        return PaddedGaussian(torch.tanh(mean), F.softplus(raw_std) + self.config.min_std, self.action_mask)

    def loss(self, obs: torch.Tensor, avail: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Negative log-likelihood of the opponents' real ``actions`` minus the entropy bonus, averaged over pairs.

        actions: int64 [B, N] or float [B, N, A] (everyone's real actions).
        """
        dist = self.distribution(obs, avail)
        nll = -dist.log_prob(actions[:, self.opponents]).mean()
        entropy = dist.entropy().mean()
        return {"loss": nll - self.config.entropy_coef * entropy, "nll": nll.detach(), "entropy": entropy.detach()}

    @torch.no_grad()
    def errors(self, obs: torch.Tensor, avail: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """ε^i_j ``[N, N]`` (diagonal 0): how far each model is from its opponent's real actions, in [0, 1].

        Discrete: ``1 - E[π̂(a_real)]``, the expected probability of predicting another action than the one taken.
        Continuous: ``E ||mode(π̂) - a_real||_2 / (2 sqrt(d_j))``, the distance to the real action as a fraction of
        the largest possible distance in the ``[-1, 1]^{d_j}`` box. (The paper's ε is a max over states of a total
        variation distance, which cannot be measured from samples; these are sample estimates of how wrong the
        model is, with the same ordering role in ``n_j``.)
        """
        dist = self.distribution(obs, avail)
        real = actions[:, self.opponents]
        if self.spec.discrete:
            per_pair = 1.0 - dist.probs.gather(-1, real.unsqueeze(-1)).squeeze(-1).mean(0)
        else:
            dims = self.action_mask.sum(-1).float()  # [P]
            distance = torch.where(self.action_mask, dist.mode() - real.float(), 0.0).norm(dim=-1)  # [B, P]
            per_pair = distance.mean(0) / (2.0 * dims.sqrt())
        n = self.spec.n_agents
        table = torch.zeros(n, n, device=per_pair.device)
        table[self.egos, self.opponents] = per_pair
        return table

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, avail: torch.Tensor, greedy: bool = False) -> torch.Tensor:
        """Predicted opponent actions ``[B, N_ego, N, ...]`` (int64 ``[B, N, N]`` or float ``[B, N, N, A]``);
        entries on the diagonal are 0 (the ego acts itself)."""
        dist = self.distribution(obs, avail)
        actions = dist.mode() if greedy else dist.sample()
        n, B = self.spec.n_agents, obs.shape[0]
        table = torch.zeros(B, n, n, *actions.shape[2:], dtype=actions.dtype, device=actions.device)
        table[:, self.egos, self.opponents] = actions
        return table


def adaptive_rollout_lengths(errors: torch.Tensor, horizon: int, rule: str = "error_ratio") -> torch.Tensor:
    """Steps ``n^i_j`` ``[N, N]`` (int64) for which ego ``i`` uses its model of opponent ``j`` in a ``horizon``-step
    rollout before querying the real opponent; the diagonal is ``horizon``.

    ``error_ratio`` (AORPO paper §5.1): ``n_j = floor(k * min_j' ε_j' / ε_j)``, the minimum over the ego's other
    opponents; a perfect model (ε = 0) gets ``k``. ``accuracy_ratio`` (the released code):
    ``n_j = floor(k * (1 - ε_j) / max_j' (1 - ε_j'))``.
    """
    n = errors.shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=errors.device)
    errors = errors.float()
    if rule == "error_ratio":
        best = torch.where(off_diagonal, errors, torch.inf).amin(dim=1, keepdim=True)  # [N, 1]
        ratio = torch.where(errors > 0, best / errors.clamp_min(1e-12), torch.ones_like(errors))
    elif rule == "accuracy_ratio":
        accuracy = (1.0 - errors).clamp_min(0.0)
        top = torch.where(off_diagonal, accuracy, -torch.inf).amax(dim=1, keepdim=True)
        ratio = torch.where(top > 0, accuracy / top.clamp_min(1e-12), torch.zeros_like(accuracy))
    else:
        raise ValueError(f"rule must be 'error_ratio' or 'accuracy_ratio', got {rule!r}")
    lengths = torch.floor(horizon * ratio.clamp(0.0, 1.0) + 1e-6).long()
    return torch.where(off_diagonal, lengths, torch.full_like(lengths, horizon))


def ego_opponent_features(predicted_features: torch.Tensor) -> torch.Tensor:
    """What each ego's actor reads (AORPO Eq. 4): ``[..., N_ego, N, A]`` predicted action features -> ``[..., N,
    (N-1) A]``, row ``i`` holding ego ``i``'s predictions of the other agents, in agent order."""
    n = predicted_features.shape[-2]
    others = torch.tensor([[j for j in range(n) if j != i] for i in range(n)], device=predicted_features.device)
    rows = torch.arange(n, device=predicted_features.device).unsqueeze(1)
    return predicted_features[..., rows, others, :].flatten(-2)
