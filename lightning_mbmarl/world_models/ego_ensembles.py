"""One bootstrap ensemble of probabilistic dynamics models per ego agent (AORPO §5.1, after Chua et al. 2018).

Ego ``i`` owns members ``[i M, (i + 1) M)`` of a single :class:`GaussianEnsemble` with ``N M`` members, so all
egos' models train and predict in one batched pass. Each ego's members predict the next global state and *its own*
reward; each ego keeps its own elites, and a prediction comes from one of them chosen uniformly per sample.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble, ensemble_loss, held_out_errors


class EgoEnsembles(nn.Module):
    """``N`` ensembles of ``config.members`` members (``config.elites`` elites each) over (state, joint action)."""

    def __init__(self, n_agents: int, state_dim: int, joint_action_dim: int, config: EnsembleConfig) -> None:
        super().__init__()
        self.n_agents, self.members_per_ego, self.elites_per_ego = n_agents, config.members, config.elites
        combined = dataclasses.replace(config, members=n_agents * config.members, elites=n_agents * config.elites)
        self.ensemble = GaussianEnsemble(state_dim, joint_action_dim, combined)
        self.register_buffer("member_ego", torch.arange(n_agents).repeat_interleave(config.members), persistent=False)
        with torch.no_grad():  # initial elites: each ego's first members
            first = torch.arange(config.elites)
            self.ensemble.set_elites(torch.cat([first + i * config.members for i in range(n_agents)]))

    def _with_ego_rewards(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch with ``reward`` [E_total, B]: each member's target is its ego's reward (``agent_rewards``)."""
        rewards = batch["agent_rewards"].float()  # [B, N]
        return {**batch, "reward": rewards[:, self.member_ego].transpose(0, 1)}

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:func:`ensemble_loss` with per-ego reward targets (bootstrap weights per member)."""
        return ensemble_loss(self.ensemble, self._with_ego_rewards(batch))

    @torch.no_grad()
    def held_out_errors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each member's error [N M] on ``batch``, against its ego's reward."""
        return held_out_errors(self.ensemble, self._with_ego_rewards(batch))

    @torch.no_grad()
    def choose_elites(self, errors: torch.Tensor) -> torch.Tensor:
        """Keep each ego's ``elites_per_ego`` members with the lowest ``errors`` [N M]; returns their global indices."""
        per_ego = errors.view(self.n_agents, self.members_per_ego)
        local = per_ego.topk(self.elites_per_ego, dim=1, largest=False).indices  # [N, K]
        offsets = torch.arange(self.n_agents, device=local.device).unsqueeze(1) * self.members_per_ego
        elites = (local + offsets).flatten()
        self.ensemble.set_elites(elites)
        return elites

    @torch.no_grad()
    def step(
        self, state: torch.Tensor, joint_action: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each ego's model advances its own batch: state [N, B, S], joint_action [N, B, J] ->
        (next_state [N, B, S], reward [N, B], terminal bool [N, B]), from one random elite of that ego per sample."""
        n, M, K = self.n_agents, self.members_per_ego, self.elites_per_ego
        B = state.shape[1]
        pred = self.ensemble(state.repeat_interleave(M, dim=0), joint_action.repeat_interleave(M, dim=0))
        elites = self.ensemble.elite_indices.view(n, K)  # global member indices
        choice = elites.gather(1, torch.randint(K, (n, B), device=state.device))  # [N, B]
        rows = torch.arange(B, device=state.device).expand(n, B)
        mean = pred.next_state_mean[choice, rows]  # [N, B, S]
        next_state = (
            mean
            if deterministic
            else mean + torch.exp(0.5 * pred.next_state_log_var[choice, rows]) * torch.randn_like(mean)
        )
        reward = pred.reward_mean[choice, rows]
        if pred.terminal_logit is None:
            terminal = torch.zeros(n, B, dtype=torch.bool, device=state.device)
        else:
            votes = (pred.terminal_logit[elites] > 0).sum(1)  # [N, B] elites of each ego voting "terminal"
            terminal = 2 * votes > K
        return next_state, reward, terminal
