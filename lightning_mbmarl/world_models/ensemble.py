"""Centralised Gaussian world-model ensemble (MOMA-PPO §3.1): networks, training loss, elite selection.

Every member maps (global state ``s`` [S], joint action features ``a`` [N*A]) to

* a diagonal Gaussian over the next state ``N(mu_T, sigma_T^2)`` (transition network),
* a Gaussian over the reward ``N(mu_r, sigma_r^2)`` and a termination logit (reward network).

The ``E`` members of each network live in one :class:`BatchedMLP`, so a forward pass is one batched matmul per
layer for all members. Log-variances are kept inside learned soft bounds (PETS): ``max - softplus(max - v)`` then
``min + softplus(v - min)``; the loss pushes the bounds together with a small regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.config_ranges import require_positive
from lightning_mbmarl.nn.batched import BatchedMLP

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}


@dataclass
class EnsembleConfig:
    """Architecture and training settings of a :class:`GaussianEnsemble` (defaults: MOMA-PPO appendix)."""

    members: int = 7  # members trained (N_m)
    elites: int = 5  # members kept for rollouts, the lowest held-out error (N)
    hidden: tuple[int, ...] = (1024, 1024, 1024, 1024)  # hidden layer widths of both networks
    activation: str = "silu"  # hidden activation, a key of ACTIVATIONS
    learning_rate: float = 3e-5  # optimiser step size (read by the trainer)
    weight_decay: float = 0.0  # optimiser weight decay (read by the trainer; the paper gives none)
    predict_delta: bool = True  # the transition network predicts s' - s instead of s'
    min_log_var: float = -10.0  # initial value of the learned lower soft bound on log-variances
    max_log_var: float = 0.5  # initial value of the learned upper soft bound on log-variances
    log_var_bound_coef: float = 0.01  # weight of the regulariser sum(max bound) - sum(min bound)
    bootstrap: bool = True  # weight each sample by Poisson(1) per member when no weights are given
    termination: bool = True  # the reward network also predicts a termination logit

    def __post_init__(self) -> None:
        require_positive(self, "members", "elites", "hidden", "learning_rate")
        if self.elites > self.members:
            raise ValueError(f"EnsembleConfig: elites ({self.elites}) must be at most members ({self.members})")


@dataclass
class EnsemblePrediction:
    """Per-member predictions, member axis first.

    next_state_mean:    [E, B, S]  mean of the next state (the delta is already added back)
    next_state_log_var: [E, B, S]
    reward_mean:        [E, B]
    reward_log_var:     [E, B]
    terminal_logit:     [E, B] or None when the ensemble does not model termination
    """

    next_state_mean: torch.Tensor
    next_state_log_var: torch.Tensor
    reward_mean: torch.Tensor
    reward_log_var: torch.Tensor
    terminal_logit: torch.Tensor | None


def _soft_bound(log_var: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Smoothly keep ``log_var`` inside ``[low, high]`` (differentiable in all three)."""
    log_var = high - F.softplus(high - log_var)
    return low + F.softplus(log_var - low)


class GaussianEnsemble(nn.Module):
    """``E`` independent (transition, reward) network pairs over (state [S], joint action features [J]).

    Inputs are normalised with fixed statistics (:meth:`set_normalizer`), stored as buffers so they checkpoint,
    as are the indices of the elite members (:meth:`set_elites`).
    """

    input_mean: torch.Tensor
    input_std: torch.Tensor
    elite_indices: torch.Tensor

    def __init__(self, state_dim: int, joint_action_dim: int, config: EnsembleConfig | None = None) -> None:
        super().__init__()
        config = config or EnsembleConfig()
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {config.activation!r}")
        if not 2 <= config.elites <= config.members:
            raise ValueError(f"need 2 <= elites <= members, got elites={config.elites}, members={config.members}")
        self.config = config
        self.state_dim, self.joint_action_dim = state_dim, joint_action_dim
        E, act = config.members, ACTIVATIONS[config.activation]
        in_dim = state_dim + joint_action_dim
        self.transition = BatchedMLP(E, in_dim, 2 * state_dim, config.hidden, act)
        self.reward = BatchedMLP(E, in_dim, 2 + int(config.termination), config.hidden, act)
        self.state_log_var_min = nn.Parameter(torch.full((E, 1, state_dim), config.min_log_var))
        self.state_log_var_max = nn.Parameter(torch.full((E, 1, state_dim), config.max_log_var))
        self.reward_log_var_min = nn.Parameter(torch.full((E, 1), config.min_log_var))
        self.reward_log_var_max = nn.Parameter(torch.full((E, 1), config.max_log_var))
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))
        self.register_buffer("elite_indices", torch.arange(config.elites))

    @property
    def members(self) -> int:
        return self.config.members

    def set_normalizer(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Fix the input statistics ``mean``/``std`` [S + J]; near-constant inputs (std < 1e-6) keep scale 1."""
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    def fit_normalizer(self, state: torch.Tensor, joint_action: torch.Tensor) -> None:
        """Set the input statistics from data: ``state`` [B, S], ``joint_action`` [B, J]."""
        inputs = torch.cat([state, joint_action], dim=-1).float()
        self.set_normalizer(inputs.mean(0), inputs.std(0))

    def set_elites(self, indices: torch.Tensor) -> None:
        """Choose the members used for rollouts: ``indices`` long [elites]."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        if indices.shape != self.elite_indices.shape:
            raise ValueError(f"expected {self.elite_indices.numel()} elite indices, got shape {tuple(indices.shape)}")
        if indices.min() < 0 or indices.max() >= self.members or indices.unique().numel() != indices.numel():
            raise ValueError(f"elite indices must be distinct members in [0, {self.members}), got {indices.tolist()}")
        self.elite_indices.copy_(indices)

    # What world_models/trainer.py:EnsembleFitting fits through (EgoEnsembles offers the same three).
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:func:`ensemble_loss` of every member on ``batch`` (bootstrap weights drawn per member)."""
        return ensemble_loss(self, batch)

    def held_out_errors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """:func:`held_out_errors` [E] on ``batch``."""
        return held_out_errors(self, batch)

    def choose_elites(self, errors: torch.Tensor) -> torch.Tensor:
        """Keep the ``config.elites`` members with the lowest ``errors`` [E]; returns their indices."""
        elites = select_elites(errors, self.config.elites)
        self.set_elites(elites)
        return elites

    def forward(self, state: torch.Tensor, joint_action: torch.Tensor) -> EnsemblePrediction:
        """Predict for every member.

        state: [B, S] (shared by all members) or [E, B, S]; joint_action: [B, J] or [E, B, J] (same leading axes).
        """
        E, S = self.members, self.state_dim
        x = (torch.cat([state, joint_action], dim=-1) - self.input_mean) / self.input_std
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(E, -1, -1)
        t = self.transition(x)
        r = self.reward(x)
        return EnsemblePrediction(
            next_state_mean=t[..., :S] + state if self.config.predict_delta else t[..., :S],
            next_state_log_var=_soft_bound(t[..., S:], self.state_log_var_min, self.state_log_var_max),
            reward_mean=r[..., 0],
            reward_log_var=_soft_bound(r[..., 1], self.reward_log_var_min, self.reward_log_var_max),
            terminal_logit=r[..., 2] if self.config.termination else None,
        )

    def log_var_bound_penalty(self) -> torch.Tensor:
        """``[E]``: sum of upper minus sum of lower log-variance bounds, times the config coefficient."""
        spread = (self.state_log_var_max - self.state_log_var_min).sum((1, 2)) + (
            self.reward_log_var_max - self.reward_log_var_min
        ).sum(1)
        return self.config.log_var_bound_coef * spread


def _gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian negative log-likelihood without the constant ``0.5 log 2 pi``."""
    return 0.5 * ((target - mean).pow(2) * torch.exp(-log_var) + log_var)


def _target(batch: dict[str, torch.Tensor], key: str, like: torch.Tensor) -> torch.Tensor:
    """``batch[key]`` as float, shaped like the prediction ``like`` [E, B, ...] (given as [B, ...] or [E, B, ...])."""
    value = batch[key].float()
    if value.shape not in (like.shape, like.shape[1:]):
        raise ValueError(f"batch[{key!r}] must have shape {tuple(like.shape[1:])}, got {tuple(value.shape)}")
    return value.expand_as(like)


def bootstrap_weights(
    members: int, batch: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Online-bootstrap weights ``[E, B]`` drawn from Poisson(1), so each member sees a different resample."""
    rates = torch.ones(members, batch, device=generator.device if generator is not None else device)
    return torch.poisson(rates, generator=generator).to(device)


def ensemble_loss(
    model: GaussianEnsemble,
    batch: dict[str, torch.Tensor],
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Training loss of every member.

    batch: ``state`` [B, S], ``action_features`` [B, N, A], ``next_state`` [B, S], ``reward`` [B],
    ``terminal`` [B] (bool or float). weights: [E, B] per-member per-sample weights; when None and
    ``config.bootstrap`` they are drawn with :func:`bootstrap_weights` (``generator`` seeds them), else all ones.

    Returns ``loss`` (scalar, summed over members) and per-member [E] ``transition_nll`` (mean over batch and
    state dims), ``reward_nll``, ``termination_bce`` (zeros without termination), ``log_var_bound``.
    """
    state = batch["state"].float()
    pred = model(state, batch["action_features"].flatten(-2).float())
    E, B = pred.reward_mean.shape
    if weights is None:
        weights = (
            bootstrap_weights(E, B, generator, state.device)
            if model.config.bootstrap
            else torch.ones(E, B, device=state.device)
        )
    next_state = _target(batch, "next_state", pred.next_state_mean)
    transition = _gaussian_nll(pred.next_state_mean, pred.next_state_log_var, next_state).mean(-1)
    reward = _gaussian_nll(pred.reward_mean, pred.reward_log_var, _target(batch, "reward", pred.reward_mean))
    if pred.terminal_logit is None:
        termination = torch.zeros_like(reward)
    else:
        terminal = _target(batch, "terminal", pred.terminal_logit)
        termination = F.binary_cross_entropy_with_logits(pred.terminal_logit, terminal, reduction="none")
    out = {
        "transition_nll": (weights * transition).mean(-1),
        "reward_nll": (weights * reward).mean(-1),
        "termination_bce": (weights * termination).mean(-1),
        "log_var_bound": model.log_var_bound_penalty(),
    }
    out["loss"] = torch.stack(list(out.values())).sum()
    return out


@torch.no_grad()
def held_out_errors(model: GaussianEnsemble, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[E]``: mean squared error of each member's mean prediction over the [next state, reward] components."""
    pred = model(batch["state"].float(), batch["action_features"].flatten(-2).float())
    predicted = torch.cat([pred.next_state_mean, pred.reward_mean.unsqueeze(-1)], dim=-1)
    target = torch.cat(
        [_target(batch, "next_state", pred.next_state_mean), _target(batch, "reward", pred.reward_mean).unsqueeze(-1)],
        dim=-1,
    )
    return (predicted - target).pow(2).mean((1, 2))


def select_elites(errors: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (long [n], lowest error first) of the ``n`` members with the lowest ``errors`` [E]."""
    return torch.topk(errors, n, largest=False).indices
