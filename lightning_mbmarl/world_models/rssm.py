"""MAMBA's world model (Egorov & Shpilman 2022), the one MAG plans with: a recurrent state-space model with a
discrete latent per agent and attention across agents in the transition.

One set of weights serves all ``N`` agents; agents are told apart by the attention over the agent axis (with a
learned per-agent embedding). Each agent's recurrent state is an :class:`RSSMState`:

* ``deter`` ``[..., N, D]``: deterministic GRU state,
* ``stoch`` ``[..., N, C*K]``: a sample of ``C`` categoricals with ``K`` classes, one-hot and flattened, with
  straight-through gradients (``one_hot + (probs - sg(probs))``),
* ``logits`` ``[..., N, C, K]``: the distribution ``stoch`` was drawn from.

Networks (all act on the last axis, so any leading batch shape works):

* transition / prior ``(state, action one-hot) -> state'``: ``Linear([action, stoch]) -> attention over agents ->
  GRUCell -> prior logits -> sample`` (:meth:`RSSMWorldModel.imagine_step`);
* posterior ``(prior state, obs) -> state``: logits from ``[deter, embed(obs)]`` (:meth:`RSSMWorldModel.posterior`);
* heads on features ``[deter, stoch]``: observation reconstruction, reward, continuation ("pcont", Bernoulli),
  available actions (Bernoulli per action) and the action decoder of the mutual-information "info" term, which
  predicts agent ``i``'s action from its features before and after the step.

Time convention for a replay window of ``L`` steps (see :meth:`RSSMWorldModel.observe`): row ``t`` holds
``(obs_t, action_t, reward_t, next_obs_t, terminated_t)``; the model's state at row ``t`` is the posterior after
``obs_t``, and the transition of row ``t`` leads to the posterior after ``next_obs_t`` (the true last observation
where the episode ended, so terminal transitions are learned too). The recurrent state restarts from zeros at
``is_first`` rows and at the first row of every window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.config_ranges import require_non_negative, require_positive
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.nn.fast_path import Float32OutputLinear
from lightning_mbmarl.nn.one_hot_input import LatentLayout
from lightning_mbmarl.nn.attention import AgentAttention
from lightning_mbmarl.world_models.action_format import ActionFormat


@dataclass
class RSSMConfig:
    """Sizes and loss weights of an :class:`RSSMWorldModel` (defaults: MAMBA's tuned SMAC configuration)."""

    hidden: int = 256  # width of every hidden layer (encoder, decoder, latent heads, transition input, heads)
    embed: int = 256  # observation embedding size
    deter: int = 256  # deterministic (GRU) state size per agent
    categoricals: int = 32  # categorical latent variables per agent (C)
    classes: int = 32  # classes of each categorical (K)
    attention_layers: int = 3  # transformer encoder layers across agents in the transition
    attention_heads: int = 8  # attention heads of each layer
    attention_feedforward: int = 256  # feed-forward width of each attention layer (MAMBA: = hidden)
    attention_dropout: float = 0.1  # dropout inside the attention layers (active in train mode only)
    head_layers: int = 2  # hidden layers of the reward, pcont, avail and info (action) heads
    # Reward head targets: "agent" (each agent its own reward r^i, as MABL §3.1.2 writes the predictor and as the
    # released MAMBA and MABL code train it on Flatland; the learner scores imagination with their mean over
    # agents) or "team" (every agent the team reward). Where an environment has no per-agent rewards (SMAX,
    # MaMuJoCo, ICG) its agent_rewards repeat the team reward and the two coincide.
    reward_target: Literal["team", "agent"] = "agent"
    kl_balance: float = 0.8  # weight of KL(sg(post) || prior), which trains the prior; 1 - it trains the posterior
    kl_scale: float = 1.0  # weight of the balanced KL term
    recon_scale: float = 1.0  # weight of observation reconstruction (smooth-L1, summed over observation entries)
    reward_scale: float = 1.0  # weight of reward prediction (smooth-L1)
    pcont_scale: float = 1.0  # weight of continuation prediction (Bernoulli NLL of 1 - terminated)
    avail_scale: float = 1.0  # weight of available-action prediction (Bernoulli NLL, summed over choices)
    info_scale: float = 1.0  # weight of the action-prediction "info" term (cross-entropy)
    avail_threshold: float = 0.5  # imagination: a choice is available where the avail head's probability exceeds it
    learning_rate: float = 2e-4  # optimiser step size (read by the algorithm)
    grad_clip: float = 100.0  # gradient-norm clip (read by the algorithm)

    def __post_init__(self) -> None:
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"RSSMConfig: kl_balance must be in [0, 1], got {self.kl_balance}")
        require_positive(
            self, "hidden", "embed", "deter", "categoricals", "classes", "attention_heads", "attention_feedforward"
        )
        require_positive(self, "learning_rate", "grad_clip")
        require_non_negative(self, "attention_layers", "head_layers")
        if self.reward_target not in ("team", "agent"):
            raise ValueError(f"RSSMConfig: reward_target must be 'team' or 'agent', got {self.reward_target!r}")


@dataclass
class RSSMState:
    """Recurrent state of every agent; all fields share the leading shape ``[..., N]``."""

    deter: torch.Tensor  # [..., N, D]
    stoch: torch.Tensor  # [..., N, C*K] straight-through one-hot sample
    logits: torch.Tensor  # [..., N, C, K]

    @property
    def features(self) -> torch.Tensor:
        """``[deter, stoch]``: ``[..., N, D + C*K]``, what heads and policies read."""
        return torch.cat([self.deter, self.stoch.to(self.deter.dtype)], dim=-1)

    # The three fields by name (not dataclasses.fields, which torch.compile cannot trace through).
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "RSSMState":
        """Apply ``fn`` to every field (for indexing, reshaping or detaching leading axes)."""
        return RSSMState(fn(self.deter), fn(self.stoch), fn(self.logits))

    def detach(self) -> "RSSMState":
        return self.map(torch.Tensor.detach)

    @staticmethod
    def where(mask: torch.Tensor, a: "RSSMState", b: "RSSMState") -> "RSSMState":
        """``a`` where ``mask`` (bool, the leading shape without the agent axis), else ``b``."""

        def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            m = mask.reshape(*mask.shape, *([1] * (x.dim() - mask.dim())))
            return torch.where(m, x, y)

        return RSSMState(pick(a.deter, b.deter), pick(a.stoch, b.stoch), pick(a.logits, b.logits))

    def unbind(self, dim: int) -> list["RSSMState"]:
        """The states along axis ``dim``, one per index. Its backward is one stack of their gradients, where
        indexing each step (``x[:, t]``) makes the backward fill and add a whole-sequence gradient per step."""
        return [
            RSSMState(*fields)
            for fields in zip(self.deter.unbind(dim), self.stoch.unbind(dim), self.logits.unbind(dim))
        ]

    @staticmethod
    def stack(states: list["RSSMState"], dim: int) -> "RSSMState":
        return RSSMState(
            torch.stack([s.deter for s in states], dim),
            torch.stack([s.stoch for s in states], dim),
            torch.stack([s.logits for s in states], dim),
        )


@dataclass
class ObservedSequence:
    """Filtered states of a replay window (:meth:`RSSMWorldModel.observe`), all ``[B, L, N, ...]``.

    start:     posterior after ``obs_t``, the state ``action_t`` is taken in
    prior:     transition prior from ``(start_t, action_t)``
    posterior: posterior after ``next_obs_t``; equals ``start_{t+1}`` unless row ``t + 1`` starts an episode
    """

    start: RSSMState
    prior: RSSMState
    posterior: RSSMState


def straight_through_sample(logits: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot samples of ``[..., C, K]`` categoricals, flattened to ``[..., C*K]`` (float32).

    The forward value is the one-hot sample; gradients flow as if it were the probabilities. ``uniform``: the
    random numbers to draw with (see :func:`sample_from_probs`).
    """
    probs = logits.float().softmax(dim=-1)
    one_hot = float_one_hot(sample_from_probs(probs, uniform), logits.shape[-1])
    return (one_hot + (probs - probs.detach())).flatten(-2)  # forward value exactly one-hot


def float_one_hot(classes: torch.Tensor, size: int) -> torch.Tensor:
    """float32 one-hot ``[..., C, size]`` of int64 classes ``[..., C]``.

    Eagerly written in place: ``F.one_hot`` builds an int64 tensor and copies it to float32, up to 6x the time on a CPU.
    Under ``torch.compile`` ``F.one_hot``, which inductor fuses into its consumers: with the in-place scatter the
    compiled RSSM loss no longer matched the eager one on the same random numbers (0.7% apart in
    ``test_compiled_world_model_loss_matches_eager``).
    """
    if torch.compiler.is_compiling():
        return F.one_hot(classes, size).float()
    one_hot = torch.zeros(*classes.shape, size, device=classes.device)
    return one_hot.scatter_(-1, classes.unsqueeze(-1), 1.0)


def sample_classes(logits: torch.Tensor) -> torch.Tensor:
    """Sampled class of each of ``[..., C, K]`` categoricals: int64 ``[..., C]``.

    Draws what :func:`straight_through_sample` draws for the same logits and random state. Logits of a lower
    precision (MAG's bf16 look-ahead) are sampled as their float32 values: the softmax is taken in float32.
    """
    return sample_from_probs(logits.softmax(dim=-1, dtype=torch.float32))


def sample_from_probs(probs: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
    """Sampled class of each of ``[..., C, K]`` categoricals given their probabilities: int64 ``[..., C]``.

    Inverse-CDF sampling with one ``torch.rand`` number per categorical: the class is the number of cumulative
    probabilities at or below ``u * total``. A third of the time of Gumbel-max (``K`` random numbers and two logs
    per categorical), which mattered in MAG's planning look-ahead: it samples ``C`` categoricals per agent, candidate
    and look-ahead step.

    ``uniform`` ``[..., C, 1]``: the numbers in [0, 1) to draw with (default: fresh ``torch.rand`` numbers), so that
    a computation that draws only some rows can use the same numbers as one that draws them all.
    """
    cdf = probs.cumsum(dim=-1)
    if uniform is None:
        uniform = torch.rand(*probs.shape[:-1], 1, dtype=cdf.dtype, device=cdf.device)
    u = uniform.to(cdf.dtype) * cdf[..., -1:]
    # counted by binary search (a cumulative sum of non-negative numbers never decreases): on a CPU half the time of
    # comparing all K entries with u and summing the mask
    below = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return below.clamp_(max=probs.shape[-1] - 1)  # clamp: u rounded up to the total


def mlp(in_features: int, hidden: int, out_features: int, layers: int) -> nn.Sequential:
    """``layers`` ReLU hidden layers of width ``hidden`` then a linear output (float32 inside autocast regions)."""
    sizes = [in_features] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(a, b), nn.ReLU()]
    modules.append(Float32OutputLinear(sizes[-1], out_features))
    return nn.Sequential(*modules)


class RSSMWorldModel(nn.Module):
    """MAMBA's discrete-latent RSSM for a team of ``N`` agents (see the module docstring); discrete or continuous
    actions (:mod:`~lightning_mbmarl.world_models.action_format`: one-hot or clipped inputs, no avail head for a
    continuous space, a Gaussian action decoder)."""

    obs_mask: torch.Tensor
    action_mask: torch.Tensor

    def __init__(self, spec: EnvSpec, config: RSSMConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or RSSMConfig()
        self.actions = ActionFormat(spec)
        self.n_agents, self.obs_dim, self.action_dim = spec.n_agents, spec.obs_dim, spec.action_dim
        self.stoch_dim = c.categoricals * c.classes
        self.feature_dim = c.deter + self.stoch_dim
        self.layout = LatentLayout(c.deter, c.categoricals, c.classes)  # of the features [deter, stoch]
        self.register_buffer("obs_mask", torch.as_tensor(spec.observation_mask()), persistent=False)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

        self.encoder = nn.Sequential(mlp(spec.obs_dim, c.hidden, c.embed, 1), nn.ReLU())
        self.transition_input = nn.Sequential(nn.Linear(spec.action_dim + self.stoch_dim, c.hidden), nn.ReLU())
        self.attention = AgentAttention(
            spec.n_agents, c.hidden, c.attention_layers, c.attention_heads, c.attention_feedforward, c.attention_dropout
        )
        self.cell = nn.GRUCell(c.hidden, c.deter)
        self.prior_head = mlp(c.deter, c.hidden, self.stoch_dim, 1)
        self.posterior_head = mlp(c.deter + c.embed, c.hidden, self.stoch_dim, 1)

        self.decoder = mlp(self.feature_dim, c.hidden, spec.obs_dim, 1)
        self.reward_head = mlp(self.feature_dim, c.hidden, 1, c.head_layers)
        self.pcont_head = mlp(self.feature_dim, c.hidden, 1, c.head_layers)
        self.avail_head = mlp(self.feature_dim, c.hidden, spec.action_dim, c.head_layers) if spec.discrete else None
        self.action_head = mlp(2 * self.feature_dim, c.hidden, self.actions.decoder_width, c.head_layers)

    # ------------------------------------------------------------------------------------------ latent steps
    def _latent(self, deter: torch.Tensor, logits: torch.Tensor, uniform: torch.Tensor | None = None) -> RSSMState:
        logits = logits.unflatten(-1, (self.config.categoricals, self.config.classes))
        return RSSMState(deter, straight_through_sample(logits, uniform), logits)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation embedding ``[..., N, O] -> [..., N, embed]``."""
        return self.encoder(obs)

    def reset_prior(self, batch_shape: tuple[int, ...] | torch.Size) -> RSSMState:
        """The prior before an episode's first observation, ``[*batch_shape, N]``: ``deter = 0`` and the prior head's
        logits at 0. It is the same for every row, so it is computed once and expanded (its one sample too: only
        ``deter`` and ``logits`` are ever read, by posteriors and by the episode-start KL term)."""
        p = self.cell.weight_hh
        deter = torch.zeros(self.n_agents, self.config.deter, device=p.device, dtype=p.dtype)
        return self._latent(deter, self.prior_head(deter)).map(lambda x: x.expand(*batch_shape, *x.shape))

    def filter_start(self, batch_shape: tuple[int, ...] | torch.Size) -> RSSMState:
        """The state an acting filter starts from, ``[*batch_shape, N]``: the reset prior."""
        return self.reset_prior(batch_shape)

    def imagine_step(self, state: RSSMState, actions: torch.Tensor) -> RSSMState:
        """Transition prior ``(state [..., N], action inputs [..., N, A]) -> state' [..., N]`` (``actions.inputs``:
        one-hots, or continuous actions clipped to the box).

        Any leading shape is one batch, e.g. ``[B, L_candidates]`` for MAG's planning: all candidates advance in
        one pass, each drawing its own categorical sample.
        """
        deter = self.transition(state, actions)
        return self._latent(deter, self.prior_head(deter))

    def transition(self, state: RSSMState, actions: torch.Tensor) -> torch.Tensor:
        """The deterministic part of :meth:`imagine_step`: the next ``deter [..., N, D]``."""
        x = self.transition_input(torch.cat([actions.to(state.stoch.dtype), state.stoch], dim=-1))
        return self.advance(x, state.deter)

    def advance(self, x: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """The deterministic part of the transition: attention across agents on ``x [..., N, hidden]`` (the
        ``transition_input`` output for ``[action, stoch]``), then the GRU cell from ``deter [..., N, D]``;
        returns the next ``deter [..., N, D]``."""
        x = self.attention(x)
        deter = self.cell(x.reshape(-1, x.shape[-1]), deter.reshape(-1, deter.shape[-1]).to(x.dtype))
        return deter.reshape(*x.shape[:-1], -1)

    def posterior(self, prior: RSSMState, embed: torch.Tensor, uniform: torch.Tensor | None = None) -> RSSMState:
        """Posterior ``(prior state [..., N], observation embedding [..., N, E]) -> state [..., N]`` (``uniform``
        ``[..., N, C, 1]``: the numbers its sample is drawn with, default fresh ones)."""
        return self._posterior(prior.deter, embed, uniform)

    def _posterior(self, deter: torch.Tensor, embed: torch.Tensor, uniform: torch.Tensor | None = None) -> RSSMState:
        logits = self.posterior_head(torch.cat([deter, embed.to(deter.dtype)], dim=-1))
        return self._latent(deter, logits, uniform)

    def filter_step(
        self, state: RSSMState, actions: torch.Tensor, obs: torch.Tensor, is_first: torch.Tensor
    ) -> RSSMState:
        """One filtering step while acting: the posterior after ``obs [..., N, O]``.

        state: the previous posterior ``[..., N]`` (anything of that shape, e.g. :meth:`reset_prior`, where
        ``is_first`` is True everywhere); actions: the action inputs ``[..., N, A]`` taken in it; is_first: bool ``[...]``,
        where the recurrent state restarts from zeros.
        """
        prior = RSSMState.where(is_first, self.reset_prior(is_first.shape), self.imagine_step(state, actions))
        return self.posterior(prior, self.encode(obs))

    def observe(self, batch: dict[str, torch.Tensor]) -> ObservedSequence:
        """Filter replay windows ``[B, L, ...]`` (keys ``obs``, ``next_obs``, ``action``, ``is_first``).

        The state restarts from zeros at the first row of each window and wherever ``is_first`` is True. Returns
        the states each action was taken in, the transition priors and the posteriors after ``next_obs``, all
        ``[B, L, N]`` (:class:`ObservedSequence`).
        """
        obs, next_obs, is_first = batch["obs"], batch["next_obs"], batch["is_first"].bool()
        expected = (*is_first.shape, self.n_agents, self.obs_dim)
        if is_first.dim() != 2 or obs.shape != expected or next_obs.shape != expected:
            raise ValueError(
                f"RSSMWorldModel.observe: expected is_first [B, L] and obs, next_obs [B, L, N={self.n_agents}, "
                f"O={self.obs_dim}], got {tuple(is_first.shape)}, {tuple(obs.shape)}, {tuple(next_obs.shape)}"
            )
        actions = self.actions.inputs(batch["action"])
        restarts = is_first.clone()
        restarts[:, 0] = True  # every window starts from zeros
        restart = self.restart_posteriors(obs, restarts)  # [B, L, N], meaningful where restarts
        steps = zip(restart.unbind(1), is_first.unbind(1), actions.unbind(1), self.encode(next_obs).unbind(1))
        starts, deters, posteriors = [], [], []
        for t, (restart_t, is_first_t, actions_t, next_embed_t) in enumerate(steps):
            start = restart_t if t == 0 else RSSMState.where(is_first_t, restart_t, posteriors[-1])
            deter = self.transition(start, actions_t)
            starts.append(start)
            deters.append(deter)
            posteriors.append(self._posterior(deter, next_embed_t))
        # The priors do not feed the recurrence (posteriors read only their deter): one pass over all steps.
        deter = torch.stack(deters, 1)
        priors = self._latent(deter, self.prior_head(deter))
        return ObservedSequence(RSSMState.stack(starts, 1), priors, RSSMState.stack(posteriors, 1))

    def restart_posteriors(self, obs: torch.Tensor, restarts: torch.Tensor) -> RSSMState:
        """Posteriors after ``obs [B, L, N, O]`` from the reset prior, ``[B, L, N]``, at the rows where ``restarts``
        (bool ``[B, L]``) is True; other rows hold zeros.

        Only those rows are computed (MAMBA's released code filtered every row from zeros and kept a few percent
        of them). Under ``torch.compile`` every row is computed instead, so shapes do not depend on the data; the
        random numbers of the samples are drawn for every row either way, so both give the same restarts.
        """
        B, L = restarts.shape
        c = self.config
        uniform = torch.rand(B, L, self.n_agents, c.categoricals, 1, device=obs.device)
        if torch.compiler.is_compiling():
            state = self.posterior(self.reset_prior((B, L)), self.encode(obs), uniform)
            return state.map(lambda x: torch.where(restarts.view(B, L, *[1] * (x.dim() - 2)), x, 0.0))
        rows = restarts.nonzero(as_tuple=True)
        state = self.posterior(self.reset_prior(rows[0].shape), self.encode(obs[rows]), uniform[rows])  # [M, N]
        return state.map(lambda x: x.new_zeros(B, L, *x.shape[1:]).index_put(rows, x))

    # ------------------------------------------------------------------------------------------------ heads
    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Reconstructed observation ``[..., N, F] -> [..., N, O]``."""
        return self.decoder(features)

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        """Reward of the step that led to this state, as each agent predicts it: ``[..., N, F] -> [..., N]``."""
        return self.reward_head(features).squeeze(-1)

    def pcont_logit(self, features: torch.Tensor) -> torch.Tensor:
        """Logit of P(the episode continues from this state): ``[..., N, F] -> [..., N]``."""
        return self.pcont_head(features).squeeze(-1)

    def avail_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of P(choice available) ``[..., N, F] -> [..., N, A]`` (discrete actions only)."""
        return self.avail_head(features)

    def action_decoder(self, features: torch.Tensor, next_features: torch.Tensor) -> torch.Tensor:
        """Info head on the action taken between two consecutive states, ``2 x [..., N, F] -> [..., N, A | 2A]``:
        logits, or a Gaussian's ``[mean, raw std]`` (:class:`ActionFormat`)."""
        return self.action_head(torch.cat([features, next_features], dim=-1))

    def predict_avail(self, features: torch.Tensor) -> torch.Tensor:
        """Thresholded availability ``bool [..., N, A]``: padded choices never, at least one real choice per agent
        (the most likely one where none passes the threshold); every real dimension of a continuous space."""
        if not self.actions.discrete:
            return self.actions.all_available(features.shape[:-2], self.action_mask)
        return self.avail_from_logits(self.avail_logits(features))

    def avail_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_avail` from the avail head's logits ``[..., N, A]``."""
        return threshold_avail(logits, self.action_mask, self.config.avail_threshold)


def threshold_avail(logits: torch.Tensor, action_mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Availability ``bool [..., N, A]`` from an avail head's logits ``[..., N, A]``: where the probability exceeds
    ``threshold``, padded choices (``action_mask`` bool ``[N, A]`` False) never, and at least one real choice per agent
    (the most likely one where none passes the threshold)."""
    probs = torch.where(action_mask, logits.float().sigmoid(), -1.0)
    avail = probs > threshold
    best = F.one_hot(probs.argmax(dim=-1), logits.shape[-1]).bool()
    return avail | (best & ~avail.any(dim=-1, keepdim=True))
