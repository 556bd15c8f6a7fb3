"""MAG's planning to predict: the same choices as the plain computation on dense features, per-sample candidate
choice, candidates batched per step, predicted availability respected everywhere the policy acts, R̂_m fitted from
the world-model pass, and MAMBA's imagined PPO batch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.latent_actor_critic import AttentionCriticConfig, LatentActorCritic, imagined_ppo_batch
from lightning_mbmarl.learners.mappo import MAPPOConfig, ppo_loss
from lightning_mbmarl.learners.policies import CategoricalPolicy
from lightning_mbmarl.nn.distributions import MaskedCategorical
from lightning_mbmarl.nn.one_hot_input import LatentLayout
from lightning_mbmarl.world_models.imagination import imagine
from lightning_mbmarl.world_models.model_reward import (
    ModelRewardConfig,
    ModelRewardPredictor,
    model_reward_loss,
    world_model_loss_and_sequence,
)
from lightning_mbmarl.rollouts.planning import (
    LookAhead,
    Plan,
    PlanningConfig,
    PlanningToPredict,
    lookahead_step,
    plan_prediction,
)
from lightning_mbmarl.world_models.rssm import RSSMConfig, RSSMState, RSSMWorldModel, straight_through_sample
from lightning_mbmarl.world_models.rssm_losses import world_model_loss

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


def tiny_model(seed: int = 0) -> RSSMWorldModel:
    torch.manual_seed(seed)
    config = RSSMConfig(
        hidden=16,
        embed=16,
        deter=16,
        categoricals=4,
        classes=4,
        attention_layers=1,
        attention_heads=2,
        attention_feedforward=16,
        head_layers=1,
    )
    return RSSMWorldModel(SPEC, config).eval()


def random_state(model: RSSMWorldModel, B: int) -> RSSMState:
    return model.posterior(model.reset_prior((B,)), model.encode(torch.randn(B, N, O)))


def tiny_predictor(model: RSSMWorldModel) -> ModelRewardPredictor:
    return ModelRewardPredictor(model.feature_dim, ModelRewardConfig(hidden=8, layers=2))


def tiny_policy(model: RSSMWorldModel, share_parameters: bool = True) -> CategoricalPolicy:
    return CategoricalPolicy(SPEC, model.feature_dim, (16, 16), share_parameters)


def reference_plan(
    model: RSSMWorldModel,
    predictor: ModelRewardPredictor,
    policy: CategoricalPolicy,
    state: RSSMState,
    actions: torch.Tensor,
    horizon: int,
    candidates: int,
) -> tuple[torch.Tensor, torch.Tensor, RSSMState]:
    """Planning to predict computed plainly on dense features: ``(choice [B], scores [B, L], first [B, L, N])``."""
    step = model.imagine_step(state, actions)
    logits = step.logits.unsqueeze(1).expand(-1, candidates, *step.logits.shape[1:])
    first = RSSMState(
        step.deter.unsqueeze(1).expand(-1, candidates, *step.deter.shape[1:]), straight_through_sample(logits), logits
    )
    candidate, scores = first, predictor(first.features).sum(dim=-1)
    for _ in range(horizon - 1):
        action = policy(candidate.features, model.predict_avail(candidate.features)).sample()
        candidate = model.imagine_step(candidate, F.one_hot(action, A).float())
        scores = scores + predictor(candidate.features).sum(dim=-1)
    return scores.argmin(dim=1), scores, first


@pytest.mark.parametrize("share_parameters", [True, False])
def test_plan_matches_the_plain_computation_and_each_sample_takes_its_own_best_candidate(
    share_parameters: bool,
) -> None:
    model = tiny_model()
    predictor, policy = tiny_predictor(model), tiny_policy(model, share_parameters)
    B, L, H = 8, 4, 5
    state = random_state(model, B)
    actions = F.one_hot(torch.randint(0, 3, (B, N)), A).float()
    torch.manual_seed(7)
    plan = plan_prediction(model, predictor, policy, state, actions, horizon=H, candidates=L)
    torch.manual_seed(7)
    with torch.no_grad():
        choice, scores, first = reference_plan(model, predictor, policy, state, actions, H, L)
    assert len(set(choice.tolist())) > 1  # the samples prefer different candidates
    assert torch.equal(plan.choice, choice) and torch.equal(plan.choice, plan.scores.argmin(dim=1))
    torch.testing.assert_close(plan.scores, scores)  # same samples, same actions: same scores up to rounding
    for field in ("deter", "stoch", "logits"):
        assert torch.equal(getattr(plan.first, field), getattr(first, field)), field
        for b in range(B):
            assert torch.equal(getattr(plan.next_state, field)[b], getattr(first, field)[b, choice[b]]), field
    # The candidates share the deterministic transition from (state, action) and differ by their samples only.
    with torch.no_grad():
        expected_deter = model.imagine_step(state, actions).deter
    torch.testing.assert_close(plan.first.deter, expected_deter.unsqueeze(1).expand_as(plan.first.deter))
    assert not plan.next_state.stoch.requires_grad  # the look-ahead only chooses


def test_bfloat16_lookahead_keeps_the_float32_candidates_and_chooses_as_well() -> None:
    model = tiny_model()
    predictor, policy = tiny_predictor(model), tiny_policy(model)
    B, L, H = 256, 4, 5
    state = random_state(model, B)
    actions = F.one_hot(torch.randint(0, 3, (B, N)), A).float()
    plans, looks = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(11)
        with torch.no_grad():
            looks[dtype] = LookAhead(model, predictor, policy, dtype)
            plans[dtype] = plan_prediction(model, predictor, policy, state, actions, H, L, looks[dtype])
    exact, low = plans[torch.float32], plans[torch.bfloat16]
    for field in ("deter", "stoch", "logits"):  # the same float32 candidates: only the choice may differ
        assert torch.equal(getattr(exact.first, field), getattr(low.first, field)), field
        assert getattr(low.next_state, field).dtype == torch.float32
    assert low.scores.dtype == torch.float32
    assert (exact.choice == low.choice).float().mean() >= 0.9  # here 254 of 256
    # A choice differs where rounding reorders close scores or flips a sampled class, after which that candidate's
    # future is another sample. Judged by each candidate's mean score over 64 fresh float32 futures, the bf16
    # choices are as good as the float32 ones and clearly better than a random candidate.
    classes = exact.first.stoch.unflatten(-1, (model.config.categoricals, model.config.classes)).argmax(dim=-1)
    torch.manual_seed(99)
    with torch.no_grad():
        value = torch.stack([looks[torch.float32].score(exact.first.deter, classes, H) for _ in range(64)]).mean(0)

    def chosen(choice: torch.Tensor) -> float:
        return value.gather(1, choice.unsqueeze(1)).mean().item()

    random_pick, best = value.mean().item(), value.min(dim=1).values.mean().item()
    assert abs(chosen(low.choice) - chosen(exact.choice)) < 0.1 * (random_pick - best)
    assert chosen(low.choice) < random_pick - 0.3 * (random_pick - best)


def test_compiled_lookahead_step_plans_as_eager_and_serves_later_rollouts() -> None:
    """MAG's ``fast.compile`` compiles the look-ahead step. With inductor drawing its random numbers as eager code
    does, a plan through the compiled step has the same scores and choices. The weights are the compiled step's
    inputs: a later rollout's look-ahead (new networks, as the bf16 look-ahead's copies are, with other weights)
    reuses it without recompiling and reads their weights."""
    model = tiny_model()
    predictor, policy = tiny_predictor(model), tiny_policy(model)
    B, L, H = 16, 4, 4
    state = random_state(model, B)
    actions = F.one_hot(torch.randint(0, 3, (B, N)), A).float()
    step, calls = torch.compile(lookahead_step), []

    def compiled_step(*args):
        calls.append(args)
        return step(*args)

    def plans(model, predictor, policy) -> tuple[Plan, Plan]:
        out = []
        for advance in (None, compiled_step):
            torch.manual_seed(5)
            with torch.no_grad():
                look = LookAhead(model, predictor, policy, advance=advance)
                out.append(plan_prediction(model, predictor, policy, state, actions, H, L, look))
        return out[0], out[1]

    with torch._inductor.config.patch(fallback_random=True):
        eager, compiled = plans(model, predictor, policy)
        torch.testing.assert_close(compiled.scores, eager.scores, rtol=1e-5, atol=1e-5)
        assert torch.equal(compiled.choice, eager.choice) and len(set(eager.choice.tolist())) > 1
        later = [copy.deepcopy(net) for net in (model, predictor, policy)]
        with torch.no_grad():
            for net in later:
                for parameter in net.parameters():
                    parameter.mul_(1.1)
        with torch._dynamo.config.patch(error_on_recompile=True):
            eager_after, compiled_after = plans(*later)
    torch.testing.assert_close(compiled_after.scores, eager_after.scores, rtol=1e-5, atol=1e-5)
    assert len(calls) == 2 * (H - 1)  # both plans' look-ahead steps ran compiled
    assert not torch.allclose(eager_after.scores, eager.scores)  # the change reached the compiled step


def test_lookahead_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="lookahead_dtype must be one of"):
        PlanningConfig(lookahead_dtype="float16")  # type: ignore[arg-type]


def test_candidates_advance_together_one_transition_per_step() -> None:
    model = tiny_model()
    predictor, policy = tiny_predictor(model), tiny_policy(model)
    shapes: list[tuple[int, ...]] = []
    advance = model.advance

    def counting_advance(x: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(deter.shape[:-2]))
        return advance(x, deter)

    model.advance = counting_advance  # type: ignore[method-assign]
    B, L, H = 5, 4, 6
    actions = F.one_hot(torch.zeros(B, N, dtype=torch.long), A).float()
    plan_prediction(model, predictor, policy, random_state(model, B), actions, H, L)
    assert shapes == [(B,)] + [(B, L)] * (H - 1)  # shared first step, then all candidates of all samples at once

    # Within a rollout of 3 steps the plans look 3, 2, then 1 step ahead; without, always H.
    for within, expected in ((True, [3, 2, 1]), (False, [H] * 3)):
        planner = PlanningToPredict(
            model, predictor, policy, PlanningConfig(horizon=H, candidates=L, within_rollout=within), rollout_length=3
        )
        state, passes = random_state(model, B), []
        with torch.no_grad():
            for _ in range(3):
                before = len(shapes)
                state = planner.imagine_step(state, actions)
                passes.append(len(shapes) - before)
        assert passes == expected and state.deter.shape == (B, N, model.config.deter)


def test_predicted_availability_is_respected_in_planning_and_imagination() -> None:
    model = tiny_model()
    with torch.no_grad():  # the avail head says: choices 0 and 2 available, the others not
        model.avail_head[-1].weight.zero_()
        model.avail_head[-1].bias.copy_(torch.tensor([5.0, -5.0, 5.0, -5.0, -5.0]))
    allowed = torch.tensor([True, False, True, False, False])
    config = MAPPOConfig(hidden=(16, 16), share_parameters=True)
    actor_critic = LatentActorCritic(SPEC, model.layout, config, AttentionCriticConfig(attention_heads=2))
    with torch.no_grad():  # a policy that strongly prefers the unavailable choices: the mask must overrule it
        actor_critic.policy.net.net.net[-1].bias.copy_(torch.tensor([0.0, 20.0, 0.0, 20.0, 20.0]))
    acted: list[tuple[torch.Tensor, torch.Tensor]] = []
    distribution = actor_critic.policy.distribution

    def recording(logits: torch.Tensor, avail: torch.Tensor | None) -> MaskedCategorical:
        """Every distribution the policy acts from (imagination and look-ahead), with its samples recorded."""
        dist = distribution(logits, avail)
        sample = dist.sample

        def recorded(generator: torch.Generator | None = None) -> torch.Tensor:
            actions = sample(generator)
            acted.append((avail, actions))
            return actions

        dist.sample = recorded  # type: ignore[method-assign]
        return dist

    actor_critic.policy.distribution = recording  # type: ignore[method-assign]
    planner = PlanningToPredict(
        model, tiny_predictor(model), actor_critic.policy, PlanningConfig(horizon=3, candidates=4), rollout_length=5
    )
    with torch.no_grad():
        rollout = imagine(planner, actor_critic.act, random_state(model, 6), 5)
    assert len(acted) > 5  # the imagined steps and the candidates' later steps
    for avail, actions in acted:
        assert torch.equal(avail, allowed.expand(avail.shape))
        assert avail.gather(-1, actions.unsqueeze(-1)).all()
    batch = imagined_ppo_batch(actor_critic, rollout, gamma=0.99, gae_lambda=0.95)
    assert batch["avail"].gather(-1, batch["action"].unsqueeze(-1)).all()
    log_probs, entropy, values = actor_critic.evaluate_actions(batch)
    torch.testing.assert_close(log_probs, batch["old_log_prob"])
    assert values.shape == batch["return"].shape and torch.isfinite(entropy).all()


def test_model_reward_fits_the_errors_of_the_same_world_model_pass() -> None:
    model = tiny_model().train()
    g = torch.Generator().manual_seed(0)
    B, L = 4, 5
    obs = torch.randn(B, L + 1, N, O, generator=g) * torch.as_tensor(SPEC.observation_mask())
    avail = torch.ones(B, L + 1, N, A, dtype=torch.bool) & torch.as_tensor(SPEC.action_mask())
    batch = {
        "obs": obs[:, :-1],
        "next_obs": obs[:, 1:],
        "avail": avail[:, :-1],
        "next_avail": avail[:, 1:],
        "action": torch.zeros(B, L, N, dtype=torch.long),
        "reward": torch.randn(B, L, generator=g),
        "agent_rewards": torch.zeros(B, L, N),
        "terminated": torch.zeros(B, L, dtype=torch.bool),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
    }
    torch.manual_seed(3)
    losses, observed = world_model_loss_and_sequence(model, batch)
    torch.manual_seed(3)
    reference = world_model_loss(model, batch)
    torch.testing.assert_close(losses["model_error"], reference["model_error"])  # same pass, same samples
    assert observed.prior.features.shape == (B, L, N, model.feature_dim)

    predictor = ModelRewardPredictor(model.feature_dim, ModelRewardConfig(hidden=32, layers=2))
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-2)
    inputs, labels = observed.prior.features.detach(), losses["model_error"]
    first = model_reward_loss(predictor, inputs, labels)["loss"].item()
    for _ in range(200):
        fit = model_reward_loss(predictor, inputs, labels)
        optimizer.zero_grad()
        fit["loss"].backward()
        optimizer.step()
    assert fit["loss"].item() < 0.1 * first


class ZeroCritic:
    layout = LatentLayout(deter=4, categoricals=2, classes=2)
    agent_values = False

    def value(self, features: torch.Tensor) -> torch.Tensor:
        return torch.zeros(features.shape[:-2])


class ZeroAgentCritic(ZeroCritic):
    agent_values = True

    def value(self, features: torch.Tensor) -> torch.Tensor:
        return torch.zeros(features.shape[:-1])


def test_imagined_ppo_batch_ends_episodes_where_the_model_predicts_it() -> None:
    H, B = 3, 2
    discounts = torch.ones(H, B, N)
    discounts[1, 1] = 0.1  # sample 1 is predicted to end after its step 1
    rollout = {
        "features": torch.randn(H + 1, B, N, ZeroCritic.layout.width),
        "avail": torch.ones(H, B, N, A, dtype=torch.bool),
        "actions": torch.zeros(H, B, N, dtype=torch.long),
        "log_probs": torch.zeros(H, B, N),
        "rewards": torch.ones(H, B, N),
        "discounts": discounts,
    }
    batch = imagined_ppo_batch(ZeroCritic(), rollout, gamma=0.5, gae_lambda=1.0)  # type: ignore[arg-type]
    assert batch["return"].shape == (H * B - 1,)  # sample 1's step 2 comes after its end: dropped
    # Kept order is [h0 b0, h0 b1, h1 b0, h1 b1, h2 b0]; with zero values the returns are discounted rewards.
    torch.testing.assert_close(batch["return"], torch.tensor([1.75, 1.5, 1.5, 1.0, 1.0]))
    torch.testing.assert_close(batch["advantage"], batch["return"])


def test_imagined_ppo_batch_per_agent_rewards_hand_worked() -> None:
    """Two agents, three imagined steps, the team predicted to end after step 1 (zero values, gamma 0.5, lambda 1).
    Agent 0's rewards 1, 0, 5 and agent 1's 0, 2, 5: per agent the returns are r_0 + 0.5 r_1 and r_1 (the end: no
    bootstrap, step 2 dropped): agent 0 1.0, 0.0; agent 1 1.0, 2.0. The team's (mean rewards 0.5, 1): 1.0, 1.0."""
    H, B = 3, 1
    discounts = torch.ones(H, B, 2)
    discounts[1] = 0.1
    rollout = {
        "features": torch.randn(H + 1, B, 2, ZeroCritic.layout.width),
        "avail": torch.ones(H, B, 2, A, dtype=torch.bool),
        "actions": torch.zeros(H, B, 2, dtype=torch.long),
        "log_probs": torch.zeros(H, B, 2),
        "rewards": torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]).view(H, B, 2),
        "discounts": discounts,
    }
    agent = imagined_ppo_batch(ZeroAgentCritic(), rollout, gamma=0.5, gae_lambda=1.0)  # type: ignore[arg-type]
    torch.testing.assert_close(agent["return"], torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
    torch.testing.assert_close(agent["advantage"], agent["return"])
    team = imagined_ppo_batch(ZeroCritic(), rollout, gamma=0.5, gae_lambda=1.0)  # type: ignore[arg-type]
    torch.testing.assert_close(team["return"], torch.tensor([1.0, 1.0]))


def test_ppo_loss_takes_each_agents_advantage_with_agent_values() -> None:
    """With a per-agent critic the loss reads advantages and returns ``[M, N]``: with every ratio inside the clip
    range the policy loss is ``-mean(ratio_i A_i)`` over samples and agents (each agent's ratio with its own
    advantage), the value loss the mean squared error of each agent's value. Shapes of another learner fail with
    one error."""
    torch.manual_seed(0)
    layout = LatentLayout(deter=4, categoricals=2, classes=2)
    config = MAPPOConfig(hidden=(8, 8), share_parameters=True, normalize_advantages=False)
    actor_critic = LatentActorCritic(SPEC, layout, config, AttentionCriticConfig(attention_heads=2), agent_values=True)
    M = 6
    features = torch.cat([torch.randn(M, N, 4), F.one_hot(torch.randint(0, 2, (M, N, 2)), 2).flatten(-2).float()], -1)
    deter, hot = layout.split(features)
    avail = torch.ones(M, N, A, dtype=torch.bool)
    actions = torch.zeros(M, N, dtype=torch.long)
    log_ratio = 0.1 * torch.randn(M, N).clamp(-1.5, 1.5)  # ratios in [0.86, 1.17], inside the clip range 0.2
    with torch.no_grad():
        old_log_prob = actor_critic.distribution(features, avail).log_prob(actions) - log_ratio
        values = actor_critic.value(features)
    assert values.shape == (M, N)
    batch = {"deter": deter, "hot": hot, "avail": avail, "action": actions, "old_log_prob": old_log_prob}
    advantage, returns = torch.randn(M, N), torch.randn(M, N)
    losses = ppo_loss(actor_critic, {**batch, "advantage": advantage, "return": returns}, 0.0, config)
    expected = -(log_ratio.exp() * advantage).mean()
    assert losses["policy_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert expected.item() != pytest.approx(-(log_ratio.exp()[..., None] * advantage[:, None]).mean().item(), rel=1e-3)
    assert losses["value_loss"].item() == pytest.approx((values - returns).square().mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"values \(6, 3\) must match returns \(6,\)"):
        ppo_loss(actor_critic, {**batch, "advantage": advantage, "return": returns.mean(-1)}, 0.0, config)
