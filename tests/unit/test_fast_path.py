"""The fast path against the float32 eager reference: one RSSM update, one ensemble step and one MAG plan on fixed
inputs give the same losses, gradients and choices within the tolerance of the precision used; the static-shape
branches (taken under torch.compile) equal the data-dependent ones; compiled losses equal eager ones; networks keep
float32 outputs under autocast; the latent actor-critic's gathered first layers equal the dense ones."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lightning_mbmarl.world_models.rssm as rssm
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.latent_actor_critic import AttentionCriticConfig, LatentActorCritic
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.learners.policies import CategoricalPolicy
from lightning_mbmarl.nn import fast_path
from lightning_mbmarl.nn.fast_path import HOT_LOOPS, FastPath, FastPathConfig
from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble, bootstrap_weights, ensemble_loss
from lightning_mbmarl.world_models.model_reward import ModelRewardConfig, ModelRewardPredictor
from lightning_mbmarl.rollouts.planning import plan_prediction
from lightning_mbmarl.world_models.rssm import RSSMConfig, RSSMWorldModel
from lightning_mbmarl.world_models.rssm_losses import TERMS, world_model_loss

SPEC = EnvSpec(
    name="toy",
    n_agents=3,
    obs_dims=(4, 6, 5),
    state_dim=7,
    action_kind="discrete",
    action_sizes=(3, 5, 4),
    episode_limit=20,
)
N, O, A = SPEC.n_agents, SPEC.obs_dim, SPEC.action_dim
BF16 = FastPath(FastPathConfig(bf16="on"))


def tiny_model(seed: int = 0, **overrides) -> RSSMWorldModel:
    torch.manual_seed(seed)
    sizes = dict(
        hidden=32,
        embed=32,
        deter=32,
        categoricals=4,
        classes=4,
        attention_layers=1,
        attention_heads=2,
        attention_feedforward=32,
        head_layers=1,
        attention_dropout=0.0,
    )
    return RSSMWorldModel(SPEC, RSSMConfig(**{**sizes, **overrides}))


def replay_windows(B: int, L: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, L + 1, N, O, generator=g) * torch.as_tensor(SPEC.observation_mask())
    avail = (torch.rand(B, L + 1, N, A, generator=g) < 0.6) & torch.as_tensor(SPEC.action_mask())
    avail[..., 0] = True
    is_first = torch.zeros(B, L, dtype=torch.bool)
    is_first[0, 2] = is_first[1, 1] = True  # episodes starting inside the windows
    return {
        "obs": obs[:, :-1],
        "next_obs": obs[:, 1:],
        "avail": avail[:, :-1],
        "next_avail": avail[:, 1:],
        "action": torch.zeros(B, L, N, dtype=torch.long),
        "reward": torch.randn(B, L, generator=g),
        "agent_rewards": torch.zeros(B, L, N),
        "terminated": torch.rand(B, L, generator=g) < 0.2,
        "is_first": is_first,
    }


@pytest.fixture
def fixed_latent_samples(monkeypatch):
    """Categorical samples that do not depend on the probabilities (drawn from a fixed stream, call by call), so
    that paths computing the probabilities in different precisions take the same samples."""
    streams: dict[str, torch.Generator] = {}

    def reset() -> None:
        streams["g"] = torch.Generator().manual_seed(1234)

    def sample(probs: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
        return torch.randint(probs.shape[-1], probs.shape[:-1], generator=streams["g"])

    reset()
    monkeypatch.setattr(rssm, "sample_from_probs", sample)
    return reset


def loss_and_gradient(
    model: RSSMWorldModel, batch: dict[str, torch.Tensor], fast: FastPath | None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    model.zero_grad()
    with fast.autocast("cpu") if fast else torch.autocast("cpu", enabled=False):
        losses = world_model_loss(model, batch)
    losses["loss"].backward()
    return losses, torch.cat([p.grad.flatten() for p in model.parameters()])


def assert_gradients_agree(fast: torch.Tensor, eager: torch.Tensor, tolerance: float) -> None:
    """Same direction and length within ``tolerance`` (relative): the bf16 rounding of every matmul moves each
    entry a little, the whole gradient hardly."""
    cosine = F.cosine_similarity(fast, eager, dim=0)
    assert cosine > 1 - tolerance, cosine
    assert abs(fast.norm() / eager.norm() - 1) < tolerance


def test_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="bf16 must be one of"):
        FastPathConfig(bf16="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compile must be one of"):
        FastPathConfig(compile="fast")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"compile_loops \['lookahead'\] are not hot loops; they are \['world_model_loss'"
    ):
        FastPathConfig(compile="default", compile_loops=["ppo_loss", "lookahead"])
    assert not FastPath(FastPathConfig(bf16="off")).bf16_enabled("cpu")
    assert not FastPath(FastPathConfig(bf16="auto")).bf16_enabled("cuda")  # measured: no gain on the H200


def test_compile_loops_choose_what_compiles_and_name_every_loop_the_package_compiles() -> None:
    def loss(x: torch.Tensor) -> torch.Tensor:
        return x.sum()

    only_lookahead = FastPath(FastPathConfig(compile="default", compile_loops=["planning_lookahead_step"]))
    assert only_lookahead.compile("ppo_loss", loss) is loss
    assert only_lookahead.compile("planning_lookahead_step", loss) is not loss
    assert FastPath(FastPathConfig(compile="default")).compile("ppo_loss", loss) is not loss  # None: every loop
    assert FastPath(FastPathConfig(compile="none", compile_loops=["ppo_loss"])).compile("ppo_loss", loss) is loss
    package = Path(fast_path.__file__).parents[1]
    names = {
        name
        for source in package.rglob("*.py")
        for name in re.findall(r"fast\.compile\(\s*f?\"([^\"]+)\"", source.read_text())
    }
    names = {name.replace("{self.prefix}", prefix) for name in names for prefix in ("world_model", "dynamics")}
    assert "planning_lookahead_step" in names and names <= set(HOT_LOOPS), names - set(HOT_LOOPS)


def test_rssm_update_in_bf16_matches_float32(fixed_latent_samples) -> None:
    model, batch = tiny_model(), replay_windows(2, 6)
    eager, eager_grad = loss_and_gradient(model, batch, None)
    fixed_latent_samples()
    fast, fast_grad = loss_and_gradient(model, batch, BF16)
    for name in ("loss", *TERMS):
        torch.testing.assert_close(fast[name], eager[name], rtol=2e-2, atol=2e-3, msg=name)
    torch.testing.assert_close(fast["model_error"], eager["model_error"], rtol=5e-2, atol=5e-3)
    assert_gradients_agree(fast_grad, eager_grad, 0.02)


def test_static_shape_branches_equal_the_row_selecting_ones(monkeypatch) -> None:
    """Under torch.compile the restarts and the episode-start terms are computed on every row, masked; eagerly only
    on the rows that need them. With the same random numbers both give the same loss and gradients."""
    model, batch = tiny_model(), replay_windows(3, 5)
    torch.manual_seed(5)
    selected, selected_grad = loss_and_gradient(model, batch, None)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    torch.manual_seed(5)
    static, static_grad = loss_and_gradient(model, batch, None)
    for name in ("loss", *TERMS):
        torch.testing.assert_close(static[name], selected[name], rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(static_grad, selected_grad, rtol=1e-4, atol=1e-6)


def test_compiled_world_model_loss_matches_eager(monkeypatch) -> None:
    """torch.compile (inductor) of the whole RSSM loss, forward and backward: the same loss and gradients as eager
    with the same random numbers (inductor draws its own unless ``fallback_random``)."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    torch._dynamo.reset()
    model, batch = tiny_model(hidden=16, embed=16, deter=16, attention_feedforward=16), replay_windows(2, 3)
    torch.manual_seed(3)
    eager, eager_grad = loss_and_gradient(model, batch, None)
    compiled_loss = FastPath(FastPathConfig(bf16="off", compile="default")).compile(
        "world_model_loss", world_model_loss
    )
    model.zero_grad()
    torch.manual_seed(3)
    compiled = compiled_loss(model, batch)
    compiled["loss"].backward()
    compiled_grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(compiled["loss"], eager["loss"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)


def ensemble_step(
    model: GaussianEnsemble,
    batch: dict[str, torch.Tensor],
    weights: torch.Tensor,
    fast: FastPath | None,
    compiled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad()
    loss_fn = fast.compile("world_model_loss", ensemble_loss) if compiled and fast else ensemble_loss
    with fast.autocast("cpu") if fast else torch.autocast("cpu", enabled=False):
        loss = loss_fn(model, batch, weights)["loss"]
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


def test_ensemble_step_in_bf16_and_compiled_matches_float32() -> None:
    torch.manual_seed(0)
    model = GaussianEnsemble(6, 4, EnsembleConfig(members=4, elites=2, hidden=(64, 64)))
    B = 128
    batch = {
        "state": torch.randn(B, 6),
        "action_features": torch.rand(B, 2, 2),
        "next_state": torch.randn(B, 6),
        "reward": torch.randn(B),
        "terminal": (torch.rand(B) < 0.1).float(),
    }
    model.fit_normalizer(batch["state"], batch["action_features"].flatten(-2))
    weights = bootstrap_weights(4, B, torch.Generator().manual_seed(1))
    eager, eager_grad = ensemble_step(model, batch, weights, None)
    fast, fast_grad = ensemble_step(model, batch, weights, BF16)
    torch.testing.assert_close(fast, eager, rtol=1e-2, atol=1e-3)
    assert_gradients_agree(fast_grad, eager_grad, 0.02)
    torch._dynamo.reset()
    compiled, compiled_grad = ensemble_step(model, batch, weights, FastPath(FastPathConfig("off", "default")), True)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-6)


def test_mag_plan_in_bf16_matches_float32(fixed_latent_samples) -> None:
    """Same samples, and a policy whose choice no rounding can change: the candidates' scores agree within bf16
    tolerance, and each sample's bf16 choice scores within that tolerance of its float32 best."""
    model = tiny_model().eval()
    predictor = ModelRewardPredictor(model.feature_dim, ModelRewardConfig(hidden=16, layers=2))
    policy = CategoricalPolicy(SPEC, model.feature_dim, (16, 16), share_parameters=True)
    with torch.no_grad():
        policy.net.net.net[-1].bias.copy_(torch.tensor([30.0, 0.0, 0.0, 0.0, 0.0]))  # always choice 0
    B, L, H = 16, 4, 4
    with torch.no_grad():
        state = model.posterior(model.reset_prior((B,)), model.encode(torch.randn(B, N, O)))
    actions = F.one_hot(torch.zeros(B, N, dtype=torch.long), A).float()
    plans = {}
    for name, fast in (("eager", None), ("fast", BF16)):
        fixed_latent_samples()
        with fast.autocast("cpu") if fast else torch.autocast("cpu", enabled=False):
            plans[name] = plan_prediction(model, predictor, policy, state, actions, H, L)
    eager, fast = plans["eager"], plans["fast"]
    assert torch.equal(fast.first.stoch, eager.first.stoch)  # the same candidates
    torch.testing.assert_close(fast.scores, eager.scores, rtol=2e-2, atol=2e-3)
    chosen = eager.scores.gather(1, fast.choice.unsqueeze(1)).squeeze(1)
    assert (chosen - eager.scores.min(dim=1).values <= 2e-2 * eager.scores.abs().max()).all()


def test_networks_keep_float32_outputs_under_autocast() -> None:
    model = tiny_model()
    features = torch.randn(5, N, model.feature_dim)
    actor_critic = LatentActorCritic(
        SPEC,
        model.layout,
        MAPPOConfig(hidden=(16, 16), share_parameters=True),
        AttentionCriticConfig(attention_heads=2),
    )
    latent = model.posterior(model.reset_prior((5,)), model.encode(torch.randn(5, N, O)))
    with BF16.autocast("cpu"):
        assert model.transition_input(features[..., : model.transition_input[0].in_features]).dtype == torch.bfloat16
        for head in (model.decode, model.reward, model.pcont_logit, model.avail_logits):
            assert head(features).dtype == torch.float32, head
        assert (
            latent.deter.dtype
            == model.imagine_step(latent, F.one_hot(torch.zeros(5, N).long(), A).float()).deter.dtype
            == torch.float32
        )  # recurrent state
        assert actor_critic.value(latent.features).dtype == torch.float32
        assert actor_critic.distribution(latent.features, None).log_probs.dtype == torch.float32
        ensemble = GaussianEnsemble(6, 4, EnsembleConfig(members=3, elites=2, hidden=(16,)))
        assert ensemble(torch.randn(7, 6), torch.randn(7, 4)).next_state_mean.dtype == torch.float32


@pytest.mark.parametrize("share_parameters", [True, False])
def test_latent_actor_critic_gathers_what_the_dense_layers_compute(share_parameters: bool) -> None:
    model = tiny_model()
    config = MAPPOConfig(hidden=(16, 16), share_parameters=share_parameters)
    actor_critic = LatentActorCritic(SPEC, model.layout, config, AttentionCriticConfig(attention_heads=2))
    with torch.no_grad():
        state = model.posterior(model.reset_prior((6,)), model.encode(torch.randn(6, N, O)))
    features, avail = state.features, torch.ones(6, N, A, dtype=torch.bool)
    deter, hot = model.layout.split(features)
    assert torch.equal(deter, state.deter)
    classes = state.stoch.unflatten(-1, (4, 4)).argmax(-1)
    assert torch.equal(hot, model.config.deter + 4 * torch.arange(4) + classes)
    dense_policy = actor_critic.policy(features, avail)
    torch.testing.assert_close(actor_critic.distribution(features, avail).log_probs, dense_policy.log_probs)
    torch.testing.assert_close(actor_critic.value(features), actor_critic.critic(features).mean(-1))
    actions = dense_policy.sample()
    log_probs, _, values = actor_critic.evaluate_actions(
        {"deter": deter, "hot": hot, "avail": avail, "action": actions}
    )
    torch.testing.assert_close(log_probs, dense_policy.log_prob(actions))
    values.sum().backward()  # gradients reach the critic's first layer through the gather
    first = actor_critic.critic.embed[0].weight.grad
    assert first is not None and first[:, model.config.deter :].abs().sum() > 0
    assert list(itertools.islice((p for p in actor_critic.policy.parameters() if p.grad is not None), 1)) == []


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_command_line_keeps_freed_memory_for_reuse() -> None:
    from lightning_mbmarl.nn.fast_path import keep_freed_memory

    assert keep_freed_memory()  # glibc accepted both thresholds


def test_mixed_precision_on_a_cpu_without_native_bf16_is_warned_about(monkeypatch) -> None:
    import lightning_mbmarl.cli as cli
    from lightning_mbmarl.nn import fast_path

    fast_path.native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    try:
        assert "emulated" in cli.precision_warning("bf16-mixed", "cpu")
        assert cli.precision_warning("32-true", "cpu") is None
        assert not FastPath(FastPathConfig(bf16="auto")).bf16_enabled("cpu")  # auto stays float32 there
    finally:
        fast_path.native_bf16.cache_clear()
