"""MABL's bi-level world model (Venugopal et al., AAMAS 2024, §3.1): for every agent a global level above an agent
level, each a GRU with a categorical latent; agents act on their agent level alone (CTDE, §3.3).

Per agent ``i`` (one set of weights for all agents; no agent id, as in the released code):

* agent level: ``h^a_t = GRU(h^a_{t-1}, Lin[z^a_{t-1}, a^i_{t-1}])``; prior ``ẑ^a_t ~ p(. | h^a_t, ẑ^g_t)``;
  posterior ``z^a_t ~ q(. | h^a_t, e(o^i_t))``;
* global level: ``h^g_t = GRU(h^g_{t-1}, Lin[z^g_{t-1}, joint action a_{t-1}])``; prior ``ẑ^g_t ~ p(. | h^g_t)``;
  posterior ``z^g_t ~ q(. | h^g_t, e_s(s_t), z^a_t)``;
* heads (§3.1.2): observation decoder and reward on the agent level ``(h^a, z^a)``; continuation, available actions
  and the action decoder on all four ``(h^a, z^a, h^g, z^g)``.

Where the paper is ambiguous or the released code (aravindvenu7/MABL) differs, this follows the paper:

* the global posterior reads the agent *posterior* sample ``z^a_t`` (the §3.2 ELBO's ``q(z^g | s_t, z^a_t, h^g_t)``;
  §3.1's prose calls it the agent prior; the released code also uses the posterior);
* the agent prior reads the global *prior* sample ``ẑ^g_t`` (§3.1 "Benefits": "conditioned on the global prior
  latent state"; the released code too), in training as in imagination;
* the reward head reads ``(z^a_t, h^a_t)`` of the state the reward leads to (the code reads ``h^a_{t+1}``);
* the action decoder predicts ``a^i_t`` from the four inputs of the state it was taken in (the code predicts
  ``a_{t-1}`` from the observation decoder's hidden layer).

``global_mode`` selects the variants of §4.3 with the same code: ``per_agent`` (MABL: a global latent per agent,
``G = N``), ``shared`` (MABL-SG: one global latent for the team, ``G = 1``, its posterior reading the agents' mean
``z^a``; inferred, the released code has no MABL-SG) and ``none`` (DreamerV2 per agent: no upper level; the agent
prior reads ``h^a`` only).

Features ``[..., N, F]`` (:attr:`BiLevelState.features`) are ``[h^a, h^g, z^a one-hot, z^g one-hot]`` (global parts
broadcast to every agent in ``shared`` mode, absent in ``none``): one :class:`LatentLayout` ``(D_a + D_g, C_a + C_g,
K)`` that the heads and the critic read; the policy reads the agent part, ``[h^a, z^a]``
(:attr:`BiLevelWorldModel.agent_layout`, the leading columns of each part). Time convention, replay windows and
restarts: as :class:`~lightning_mbmarl.world_models.rssm.RSSMWorldModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn

from lightning_mbmarl.config_ranges import require_non_negative, require_positive
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.nn.one_hot_input import LatentLayout
from lightning_mbmarl.world_models.action_format import ActionFormat
from lightning_mbmarl.world_models.rssm import RSSMState, mlp, straight_through_sample, threshold_avail

GlobalMode = Literal["per_agent", "shared", "none"]


@dataclass
class BiLevelConfig:
    """Sizes and loss weights of a :class:`BiLevelWorldModel` (defaults: the released MABL code's, for SMAC and
    Flatland alike: widths 256, 32 x 32 categoricals, model learning rate 3e-4, gradient clip 100; every loss weight
    1, no free nats)."""

    global_mode: GlobalMode = "per_agent"  # per_agent: MABL; shared: MABL-SG; none: DreamerV2 per agent
    hidden: int = 256  # width of every hidden layer
    embed: int = 256  # observation and state embedding size
    deter: int = 256  # GRU state size of each level
    categoricals: int = 32  # categorical latent variables of each level (C)
    classes: int = 32  # classes of each categorical (K)
    head_layers: int = 2  # hidden layers of the reward, pcont, avail and action-decoder heads
    # "agent": each agent predicts its own reward r^i (§3.1.2; the released code on Flatland), "team": the team
    # reward; as RSSMConfig.reward_target
    reward_target: Literal["team", "agent"] = "agent"
    kl_balance: float = 0.8  # KL balancing on both levels (MABL §3.2, from DreamerV2)
    kl_scale: float = 1.0  # weight of the agent level's balanced KL
    global_kl_scale: float = 1.0  # weight of the global level's balanced KL
    recon_scale: float = 1.0
    reward_scale: float = 1.0
    pcont_scale: float = 1.0
    avail_scale: float = 1.0
    info_scale: float = 1.0  # weight of the action decoder's cross-entropy
    avail_threshold: float = 0.5  # imagination: a choice is available where the avail head's probability exceeds it
    learning_rate: float = 3e-4
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        if self.global_mode not in ("per_agent", "shared", "none"):
            raise ValueError(
                f"BiLevelConfig: global_mode must be 'per_agent' (MABL), 'shared' (MABL-SG) or 'none' "
                f"(DreamerV2 per agent), got {self.global_mode!r}"
            )
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"BiLevelConfig: kl_balance must be in [0, 1], got {self.kl_balance}")
        require_positive(self, "hidden", "embed", "deter", "categoricals", "classes", "learning_rate", "grad_clip")
        require_non_negative(self, "head_layers")
        if self.reward_target not in ("team", "agent"):
            raise ValueError(f"BiLevelConfig: reward_target must be 'team' or 'agent', got {self.reward_target!r}")


class BiLevelState:
    """Both levels' recurrent states: ``agent`` ``[..., N]`` and ``upper`` ``[..., G]`` (None without a global level)."""

    def __init__(self, agent: RSSMState, upper: RSSMState | None) -> None:
        self.agent, self.upper = agent, upper

    @property
    def features(self) -> torch.Tensor:
        """``[h^a, h^g, z^a, z^g]``: ``[..., N, F]`` (see the module docstring)."""
        a = self.agent
        if self.upper is None:
            return a.features
        agents = a.deter.shape[:-1]
        g_deter, g_stoch = (x.expand(*agents, x.shape[-1]) for x in (self.upper.deter, self.upper.stoch))
        dtype = a.deter.dtype
        return torch.cat([a.deter, g_deter.to(dtype), a.stoch.to(dtype), g_stoch.to(dtype)], dim=-1)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "BiLevelState":
        return BiLevelState(self.agent.map(fn), None if self.upper is None else self.upper.map(fn))

    def detach(self) -> "BiLevelState":
        return self.map(torch.Tensor.detach)

    @staticmethod
    def where(mask: torch.Tensor, a: "BiLevelState", b: "BiLevelState") -> "BiLevelState":
        """``a`` where ``mask`` (bool, the leading shape without the agent axis), else ``b``."""
        upper = None if a.upper is None else RSSMState.where(mask, a.upper, b.upper)
        return BiLevelState(RSSMState.where(mask, a.agent, b.agent), upper)

    def unbind(self, dim: int) -> list["BiLevelState"]:
        """The states along axis ``dim``, one per index (see :meth:`RSSMState.unbind`)."""
        agents = self.agent.unbind(dim)
        uppers = [None] * len(agents) if self.upper is None else self.upper.unbind(dim)
        return [BiLevelState(agent, upper) for agent, upper in zip(agents, uppers)]

    @staticmethod
    def stack(states: list["BiLevelState"], dim: int) -> "BiLevelState":
        upper = None if states[0].upper is None else RSSMState.stack([s.upper for s in states], dim)
        return BiLevelState(RSSMState.stack([s.agent for s in states], dim), upper)


@dataclass
class BiLevelSequence:
    """Filtered states of replay windows (:meth:`BiLevelWorldModel.observe`), all ``[B, L, ...]``: the states each
    action was taken in, the transition priors, and the posteriors after ``next_obs`` / ``next_state``."""

    start: BiLevelState
    prior: BiLevelState
    posterior: BiLevelState


class BiLevelWorldModel(nn.Module):
    """MABL's bi-level latent world model for ``N`` agents (see the module docstring), discrete or continuous actions
    (:mod:`~lightning_mbmarl.world_models.action_format`)."""

    obs_mask: torch.Tensor
    action_mask: torch.Tensor

    def __init__(self, spec: EnvSpec, config: BiLevelConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or BiLevelConfig()
        self.actions = ActionFormat(spec)
        n, self.n_agents, self.obs_dim, self.action_dim = spec.n_agents, spec.n_agents, spec.obs_dim, spec.action_dim
        self.upper_agents = {"per_agent": n, "shared": 1, "none": 0}[c.global_mode]
        stoch = c.categoricals * c.classes
        levels = 2 if self.upper_agents else 1
        self.agent_layout = LatentLayout(c.deter, c.categoricals, c.classes)  # what the policy reads
        self.layout = LatentLayout(levels * c.deter, levels * c.categoricals, c.classes)  # what heads and critic read
        self.feature_dim = self.layout.width
        self.register_buffer("obs_mask", torch.as_tensor(spec.observation_mask()), persistent=False)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

        self.encoder = nn.Sequential(mlp(spec.obs_dim, c.hidden, c.embed, 1), nn.ReLU())
        self.agent_input = nn.Sequential(nn.Linear(spec.action_dim + stoch, c.hidden), nn.ReLU())
        self.agent_cell = nn.GRUCell(c.hidden, c.deter)
        self.agent_prior_head = mlp(c.deter + (stoch if self.upper_agents else 0), c.hidden, stoch, 1)
        self.agent_posterior_head = mlp(c.deter + c.embed, c.hidden, stoch, 1)
        if self.upper_agents:
            self.state_encoder = nn.Sequential(mlp(spec.state_dim, c.hidden, c.embed, 1), nn.ReLU())
            self.upper_input = nn.Sequential(nn.Linear(n * spec.action_dim + stoch, c.hidden), nn.ReLU())
            self.upper_cell = nn.GRUCell(c.hidden, c.deter)
            self.upper_prior_head = mlp(c.deter, c.hidden, stoch, 1)
            self.upper_posterior_head = mlp(c.deter + c.embed + stoch, c.hidden, stoch, 1)

        agent_width = self.agent_layout.width
        self.decoder = mlp(agent_width, c.hidden, spec.obs_dim, 1)
        self.reward_head = mlp(agent_width, c.hidden, 1, c.head_layers)
        self.pcont_head = mlp(self.feature_dim, c.hidden, 1, c.head_layers)
        self.avail_head = mlp(self.feature_dim, c.hidden, spec.action_dim, c.head_layers) if spec.discrete else None
        self.action_head = mlp(self.feature_dim, c.hidden, self.actions.decoder_width, c.head_layers)

    # ------------------------------------------------------------------------------------------ latent steps
    def _latent(self, deter: torch.Tensor, logits: torch.Tensor) -> RSSMState:
        logits = logits.unflatten(-1, (self.config.categoricals, self.config.classes))
        return RSSMState(deter, straight_through_sample(logits), logits)

    @staticmethod
    def _step(cell: nn.GRUCell, x: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        out = cell(x.reshape(-1, x.shape[-1]), deter.reshape(-1, deter.shape[-1]).to(x.dtype))
        return out.reshape(*x.shape[:-1], -1)

    def agent_transition(self, agent: RSSMState, actions: torch.Tensor) -> torch.Tensor:
        """``h^a_t`` from the agent level's previous state ``[..., N]`` and each agent's own action input
        ``[..., N, A]``: ``[..., N, D]``."""
        x = self.agent_input(torch.cat([actions.to(agent.stoch.dtype), agent.stoch], dim=-1))
        return self._step(self.agent_cell, x, agent.deter)

    def upper_transition(self, upper: RSSMState, actions: torch.Tensor) -> torch.Tensor:
        """``h^g_t`` from the global level's previous state ``[..., G]`` and the joint action (every agent's action input,
        ``[..., N, A]``, the same input for each of the ``G`` global latents): ``[..., G, D]``."""
        joint = actions.to(upper.stoch.dtype).flatten(-2).unsqueeze(-2).expand(*upper.stoch.shape[:-1], -1)
        x = self.upper_input(torch.cat([joint, upper.stoch], dim=-1))
        return self._step(self.upper_cell, x, upper.deter)

    def _priors(self, agent_deter: torch.Tensor, upper_deter: torch.Tensor | None) -> BiLevelState:
        """Prior latents from both levels' ``deter``: ``ẑ^g ~ p(h^g)``, then ``ẑ^a ~ p(h^a, ẑ^g)``."""
        if upper_deter is None:
            return BiLevelState(self._latent(agent_deter, self.agent_prior_head(agent_deter)), None)
        upper = self._latent(upper_deter, self.upper_prior_head(upper_deter))
        condition = upper.stoch.to(agent_deter.dtype).expand(*agent_deter.shape[:-1], -1)
        agent = self._latent(agent_deter, self.agent_prior_head(torch.cat([agent_deter, condition], dim=-1)))
        return BiLevelState(agent, upper)

    def imagine_step(self, state: BiLevelState, actions: torch.Tensor) -> BiLevelState:
        """Transition prior ``(state, joint action inputs [..., N, A]) -> state'`` on both levels."""
        upper = None if state.upper is None else self.upper_transition(state.upper, actions)
        return self._priors(self.agent_transition(state.agent, actions), upper)

    def reset_prior(self, batch_shape: tuple[int, ...] | torch.Size) -> BiLevelState:
        """The prior before an episode's first observation, ``[*batch_shape, N | G]``: both ``deter = 0``. Computed
        once and expanded (one sample of the global prior conditions every row's agent prior)."""
        p = self.agent_cell.weight_hh
        zeros = torch.zeros(self.n_agents, self.config.deter, device=p.device, dtype=p.dtype)
        upper = zeros[: self.upper_agents] if self.upper_agents else None
        return self._priors(zeros, upper).map(lambda x: x.expand(*batch_shape, *x.shape))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation embedding ``[..., N, O] -> [..., N, embed]``."""
        return self.encoder(obs)

    def encode_state(self, state: torch.Tensor) -> torch.Tensor | None:
        """Global-state embedding ``[..., S] -> [..., embed]`` (None without a global level)."""
        return self.state_encoder(state) if self.upper_agents else None

    def agent_posterior(self, agent_deter: torch.Tensor, embed: torch.Tensor) -> RSSMState:
        """``z^a ~ q(. | h^a, e(o))``: ``[..., N, D]`` and ``[..., N, E]`` -> ``[..., N]``. All acting needs."""
        return self._latent(
            agent_deter, self.agent_posterior_head(torch.cat([agent_deter, embed.to(agent_deter.dtype)], dim=-1))
        )

    def posterior(
        self,
        agent_deter: torch.Tensor,
        upper_deter: torch.Tensor | None,
        embed: torch.Tensor,
        state_embed: torch.Tensor | None,
    ) -> BiLevelState:
        """Both posteriors: ``z^a ~ q(h^a, e(o))``, then ``z^g ~ q(h^g, e_s(s), z^a)`` (``shared``: the agents' mean
        ``z^a``). ``agent_deter [..., N, D]``, ``upper_deter [..., G, D]``, ``embed [..., N, E]``, ``state_embed
        [..., E]``."""
        agent = self.agent_posterior(agent_deter, embed)
        if upper_deter is None:
            return BiLevelState(agent, None)
        below = agent.stoch.to(upper_deter.dtype)
        if self.upper_agents == 1:
            below = below.mean(dim=-2, keepdim=True)
        context = state_embed.to(upper_deter.dtype).unsqueeze(-2).expand(*upper_deter.shape[:-1], -1)
        logits = self.upper_posterior_head(torch.cat([upper_deter, context, below], dim=-1))
        return BiLevelState(agent, self._latent(upper_deter, logits))

    def filter_step(
        self, agent: RSSMState, actions: torch.Tensor, obs: torch.Tensor, is_first: torch.Tensor
    ) -> RSSMState:
        """One filtering step while acting, on the agent level only (no global state, no other agent's action):
        the agent posterior ``[..., N]`` after ``obs [..., N, O]``, from the previous one and each agent's own
        action input ``[..., N, A]``; ``is_first`` bool ``[...]`` restarts from ``h^a = 0``."""
        deter = self.agent_transition(agent, actions)
        deter = torch.where(is_first.view(*is_first.shape, 1, 1), torch.zeros_like(deter), deter)
        return self.agent_posterior(deter, self.encode(obs))

    def filter_start(self, batch_shape: tuple[int, ...] | torch.Size) -> RSSMState:
        """A blank agent-level state ``[*batch_shape, N]`` to filter from (with ``is_first`` True)."""
        p = self.agent_cell.weight_hh
        c = self.config
        return RSSMState(
            p.new_zeros(*batch_shape, self.n_agents, c.deter),
            p.new_zeros(*batch_shape, self.n_agents, c.categoricals * c.classes),
            p.new_zeros(*batch_shape, self.n_agents, c.categoricals, c.classes),
        )

    def observe(self, batch: dict[str, torch.Tensor]) -> BiLevelSequence:
        """Filter replay windows ``[B, L, ...]`` (keys ``obs``, ``next_obs``, ``state``, ``next_state``, ``action``,
        ``is_first``) on both levels; restarts at the first row of each window and wherever ``is_first``."""
        obs, is_first = batch["obs"], batch["is_first"].bool()
        expected = (*is_first.shape, self.n_agents, self.obs_dim)
        if is_first.dim() != 2 or obs.shape != expected or batch["next_obs"].shape != expected:
            raise ValueError(
                f"BiLevelWorldModel.observe: expected is_first [B, L] and obs, next_obs [B, L, N={self.n_agents}, "
                f"O={self.obs_dim}], got {tuple(is_first.shape)}, {tuple(obs.shape)}, {tuple(batch['next_obs'].shape)}"
            )
        actions = self.actions.inputs(batch["action"])
        reset = self.reset_prior(is_first.shape)
        restart = self.posterior(
            reset.agent.deter,
            None if reset.upper is None else reset.upper.deter,
            self.encode(obs),
            self.encode_state(batch["state"]),
        )  # [B, L], used where restarting
        next_embed, next_state_embed = self.encode(batch["next_obs"]), self.encode_state(batch["next_state"])
        L = obs.shape[1]
        state_embeds = [None] * L if next_state_embed is None else next_state_embed.unbind(1)
        steps = zip(restart.unbind(1), is_first.unbind(1), actions.unbind(1), next_embed.unbind(1), state_embeds)
        starts, agent_deters, upper_deters, posteriors = [], [], [], []
        for t, (restart_t, is_first_t, actions_t, embed_t, state_embed_t) in enumerate(steps):
            start = restart_t if t == 0 else BiLevelState.where(is_first_t, restart_t, posteriors[-1])
            agent_deter = self.agent_transition(start.agent, actions_t)
            upper_deter = None if start.upper is None else self.upper_transition(start.upper, actions_t)
            starts.append(start)
            agent_deters.append(agent_deter)
            upper_deters.append(upper_deter)
            posteriors.append(self.posterior(agent_deter, upper_deter, embed_t, state_embed_t))
        # Posteriors read only the priors' deter: the prior latents of every step in one pass.
        upper = None if upper_deters[0] is None else torch.stack(upper_deters, 1)
        priors = self._priors(torch.stack(agent_deters, 1), upper)
        return BiLevelSequence(BiLevelState.stack(starts, 1), priors, BiLevelState.stack(posteriors, 1))

    # ------------------------------------------------------------------------------------------------ heads
    def agent_features(self, features: torch.Tensor) -> torch.Tensor:
        """The agent level's part ``[h^a, z^a]`` of features: ``[..., N, F] -> [..., N, D + C*K]``."""
        if not self.upper_agents:
            return features
        d, start = self.config.deter, self.layout.deter
        return torch.cat([features[..., :d], features[..., start : start + self.agent_layout.width - d]], dim=-1)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Reconstructed observation from the agent level: ``[..., N, F] -> [..., N, O]``."""
        return self.decoder(self.agent_features(features))

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        """Reward of the step that led to this state, from the agent level (§3.1.2): ``[..., N, F] -> [..., N]``."""
        return self.reward_head(self.agent_features(features)).squeeze(-1)

    def pcont_logit(self, features: torch.Tensor) -> torch.Tensor:
        """Logit of P(the episode continues from this state): ``[..., N, F] -> [..., N]``."""
        return self.pcont_head(features).squeeze(-1)

    def avail_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of P(choice available) ``[..., N, F] -> [..., N, A]`` (discrete actions only)."""
        return self.avail_head(features)

    def action_decoder(self, features: torch.Tensor) -> torch.Tensor:
        """Action decoder on the action taken in this state, ``[..., N, F] -> [..., N, A | 2A]``: logits, or a
        Gaussian's ``[mean, raw std]`` (:class:`~lightning_mbmarl.world_models.action_format.ActionFormat`)."""
        return self.action_head(features)

    def predict_avail(self, features: torch.Tensor) -> torch.Tensor:
        """Thresholded availability ``bool [..., N, A]`` (:func:`~lightning_mbmarl.world_models.rssm.threshold_avail`);
        every real dimension of a continuous space."""
        if not self.actions.discrete:
            return self.actions.all_available(features.shape[:-2], self.action_mask)
        return threshold_avail(self.avail_logits(features), self.action_mask, self.config.avail_threshold)
