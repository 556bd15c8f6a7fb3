"""MABL's bi-level world model and module: shapes of both levels in each global_mode, the loss's two KL terms
against a hand computation, decentralised execution (acting never reads the global level) and short runs of the
MABL-SG and DreamerV2 variants (MABL itself learns the ICG in test_mamba_mag_end_to_end.py)."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_mbmarl.algorithms.mabl import MABL
from lightning_mbmarl.algorithms.mamba import MAMBAConfig
from lightning_mbmarl.algorithms.online import OnlineConfig
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.world_models.bilevel_losses import bilevel_world_model_loss
from lightning_mbmarl.world_models.bilevel_rssm import BiLevelConfig, BiLevelWorldModel
from lightning_mbmarl.world_models.rssm_losses import kl_balanced

SPEC = EnvSpec(
    name="toy",
    n_agents=3,
    obs_dims=(4, 5, 5),
    state_dim=7,
    action_kind="discrete",
    action_sizes=(3, 4, 4),
    episode_limit=10,
)
TINY = dict(hidden=16, embed=8, deter=12, categoricals=3, classes=4, head_layers=1)


def windows(batch: int = 2, length: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n, o, a, s = SPEC.n_agents, SPEC.obs_dim, SPEC.action_dim, SPEC.state_dim
    is_first = torch.zeros(batch, length, dtype=torch.bool)
    is_first[0, 2] = True  # an episode starts inside the first window
    return {
        "obs": torch.randn(batch, length, n, o, generator=g),
        "next_obs": torch.randn(batch, length, n, o, generator=g),
        "state": torch.randn(batch, length, s, generator=g),
        "next_state": torch.randn(batch, length, s, generator=g),
        "action": torch.randint(0, 3, (batch, length, n), generator=g),
        "reward": torch.randn(batch, length, generator=g),
        "agent_rewards": torch.randn(batch, length, n, generator=g),
        "terminated": torch.zeros(batch, length, dtype=torch.bool),
        "is_first": is_first,
        "avail": torch.ones(batch, length, n, a, dtype=torch.bool),
        "next_avail": torch.ones(batch, length, n, a, dtype=torch.bool),
    }


@pytest.mark.parametrize("mode, upper", [("per_agent", 3), ("shared", 1), ("none", 0)])
def test_both_levels_have_the_documented_shapes(mode, upper):
    model = BiLevelWorldModel(SPEC, BiLevelConfig(global_mode=mode, **TINY))
    seq = model.observe(windows())
    levels = 2 if upper else 1
    assert model.feature_dim == levels * (12 + 3 * 4) and model.agent_layout.width == 12 + 12
    assert seq.posterior.agent.deter.shape == (2, 5, 3, 12) and seq.prior.agent.logits.shape == (2, 5, 3, 3, 4)
    if upper:
        assert seq.posterior.upper.stoch.shape == (2, 5, upper, 12)
    else:
        assert seq.posterior.upper is None
    features = seq.posterior.features
    assert features.shape == (2, 5, 3, model.feature_dim)
    # the agent part is [h^a, z^a]; the layout's hot columns are those of the one-hot samples
    assert torch.equal(model.agent_features(features), seq.posterior.agent.features)
    dense, hot = model.layout.split(features)
    assert dense.shape[-1] == levels * 12 and hot.shape[-1] == levels * 3
    imagined = model.imagine_step(
        seq.posterior.map(lambda x: x[:, -1]), torch.eye(4)[torch.zeros(2, 3, dtype=torch.long)]
    )
    assert imagined.features.shape == (2, 3, model.feature_dim)
    # unbind gives each step's state, both levels (or the agent level alone)
    steps = seq.posterior.unbind(1)
    assert len(steps) == 5 and (steps[3].upper is None) == (not upper)
    assert torch.equal(steps[3].features, seq.posterior.map(lambda x: x[:, 3]).features)


def hand_kl(post_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """KL(post || prior) of each categorical, averaged over categoricals, written out: ``sum_k p_k log(p_k / q_k)``."""
    p, q = post_logits.softmax(-1), prior_logits.softmax(-1)
    return (p * (p.log() - q.log())).sum(-1).mean(-1)


def test_kl_of_one_categorical_by_hand():
    # posterior (1/4, 3/4), prior (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812...; balancing leaves the value
    post, prior = torch.tensor([[0.0, math.log(3.0)]]), torch.zeros(1, 2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert kl_balanced(post, prior, 0.8).item() == pytest.approx(expected, abs=1e-6)
    assert hand_kl(post, prior).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("target, expected", [("agent", (0.125 + 1.5 + 0.5) / 3), ("team", 0.5 * 0.2**2)])
def test_reward_term_reads_each_agents_own_reward_by_default(target, expected):
    # §3.1.2: agent i's predictor outputs its own reward r^i. The reward head is zeroed, so the term is the mean
    # smooth-L1 of the target: agents earning (0.5, 2.0, -1.0) give (0.125, 1.5, 0.5); the team reward 0.2 gives 0.02.
    assert BiLevelConfig().reward_target == "agent"
    model = BiLevelWorldModel(SPEC, BiLevelConfig(reward_target=target, **TINY))
    for p in model.reward_head.parameters():
        torch.nn.init.zeros_(p)
    batch = windows()
    batch["agent_rewards"] = torch.tensor([0.5, 2.0, -1.0]).expand(2, 5, 3)
    batch["reward"] = torch.full((2, 5), 0.2)
    assert bilevel_world_model_loss(model, batch)["reward"].item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("mode", ["per_agent", "shared"])
def test_the_loss_holds_both_levels_kl_over_transitions_and_episode_starts(mode):
    model = BiLevelWorldModel(SPEC, BiLevelConfig(global_mode=mode, **TINY))
    batch = windows()
    torch.manual_seed(3)
    losses = bilevel_world_model_loss(model, batch)
    torch.manual_seed(3)  # the same samples again
    seq = model.observe(batch)
    first = batch["is_first"]
    reset = model.reset_prior((int(first.sum()),))
    start = seq.start.map(lambda x: x[first])
    agent = (
        hand_kl(seq.posterior.agent.logits, seq.prior.agent.logits).sum()
        + hand_kl(start.agent.logits, reset.agent.logits).sum()
    ) / (2 * 5 * 3)
    upper = (
        hand_kl(seq.posterior.upper.logits, seq.prior.upper.logits).sum()
        + hand_kl(start.upper.logits, reset.upper.logits).sum()
    ) / seq.posterior.upper.logits[..., 0, 0].numel()
    assert losses["kl"].item() == pytest.approx(agent.item(), rel=1e-5)
    assert losses["global_kl"].item() == pytest.approx(upper.item(), rel=1e-5)
    assert losses["global_kl"] > 0 and torch.isfinite(losses["loss"])


def test_acting_never_reads_the_global_level():
    """Greedy actions depend on each agent's observation and its own history only: with every global-level weight
    and the critic replaced by noise, and the global-level modules made to fail when called, they are unchanged."""
    torch.manual_seed(0)
    mabl = MABL(
        env_spec=SPEC,
        online=OnlineConfig(total_env_steps=100, warmup_env_steps=10, env_steps_per_update=10, batch_size=2),
        mamba=MAMBAConfig(sequence_length=4, model_updates=1, policy_rounds=1, imagination_horizon=2),
        world_model=BiLevelConfig(**TINY),
        mappo=MAPPOConfig(hidden=(16, 16), share_parameters=True),
    )
    obs = torch.randn(4, 3, SPEC.obs_dim)
    avail = torch.ones(4, 3, SPEC.action_dim, dtype=torch.bool)
    last = torch.eye(SPEC.action_dim)[torch.randint(0, 3, (4, 3, 1))]  # one-hot [E, N, 1, A]
    history = (None, last, torch.zeros(4, 1, dtype=torch.bool))  # every stream starts an episode
    torch.manual_seed(1)  # the filter samples its latent: the same numbers for both calls
    before = mabl.act(obs, avail, history, greedy=True)
    mabl._filters.clear()
    global_parts = [
        mabl.world_model.state_encoder,
        mabl.world_model.upper_input,
        mabl.world_model.upper_cell,
        mabl.world_model.upper_prior_head,
        mabl.world_model.upper_posterior_head,
        mabl.actor_critic.critic,
    ]
    with torch.no_grad():
        for module in global_parts:
            for p in module.parameters():
                p.normal_()
            module.register_forward_hook(lambda *_: pytest.fail("acting read the global level or the critic"))
    torch.manual_seed(1)
    assert torch.equal(mabl.act(obs, avail, history, greedy=True), before)


@pytest.mark.slow
# per_agent (MABL) with team rewards learns the ICG in test_mamba_mag_end_to_end; here with a value per agent
@pytest.mark.parametrize("mode, rewards", [("shared", "team"), ("none", "team"), ("per_agent", "agent")])
def test_each_variant_trains_a_short_run(mode, rewards, tmp_path, cli, quiet_cli_args, read_metric):
    result = cli(
        "fit",
        "--config",
        "conf/mabl_icg.yaml",
        f"--model.init_args.world_model.global_mode={mode}",
        f"--model.init_args.mamba.imagined_rewards={rewards}",
        "--model.init_args.online.total_env_steps=600",
        "--model.init_args.mamba.model_updates=3",
        "--model.init_args.evaluation.final_episodes=2",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "mabl_icg" / "version_0"
    assert read_metric(run, "world_model/global_kl") > 0 or mode == "none"
    assert math.isfinite(read_metric(run, "mappo/imagined_return"))
