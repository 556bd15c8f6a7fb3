"""MAPPO: value mixer, entropy alpha, shapes for both action kinds, a coordination-game learning test, BC."""

import pytest
import torch

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.actor import Actor
from lightning_mbmarl.learners.bc import bc_loss
from lightning_mbmarl.learners.gae import timeout_gae
from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig, ppo_loss, update_entropy_alpha
from lightning_mbmarl.learners.memory import empty_history, push_history
from lightning_mbmarl.learners.value_mixer import ValueMixer

DISCRETE = EnvSpec("d", 3, (4, 6, 5), 7, "discrete", (3, 5, 2), 10)
CONTINUOUS = EnvSpec("c", 2, (4, 6), 7, "continuous", (3, 2), 10)


@pytest.mark.parametrize("monotonic, expected", [(True, 7.5), (False, 1.5)])
def test_mixer_hand_example(monotonic: bool, expected: float) -> None:
    mixer = ValueMixer(n_agents=2, state_dim=2, hidden=(), monotonic=monotonic)  # one linear layer: [w1, w2, b](s)
    layer = mixer.hypernet.output_layer
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]]]))
        layer.bias.copy_(torch.tensor([[[0.0, 0.0, 1.0]]]))
    # s = (1, 1): w = (1, -2 + 1) = (1, -1), b = 0.5 + 1 + 1 = 2.5; V_i = (2, 3)
    # monotonic: |1|*2 + |-1|*3 + 2.5 = 7.5; otherwise 1*2 - 1*3 + 2.5 = 1.5
    value = mixer(torch.tensor([[2.0, 3.0]]), torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(value, torch.tensor([expected]))


def test_update_entropy_alpha() -> None:
    alpha = torch.tensor([0.1, 0.0])
    # agent 0 below target -4 -> alpha grows by 0.001 * 1; agent 1 above target -> 0 - 0.006 clamps at 0
    new = update_entropy_alpha(alpha, torch.tensor([-5.0, 2.0]), target=-4.0, lr=0.001)
    torch.testing.assert_close(new, torch.tensor([0.101, 0.0]))


def make_batch(spec: EnvSpec, model: MAPPOActorCritic, batch_size: int, memory_length: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(batch_size, spec.n_agents, spec.obs_dim, generator=g)
    avail = torch.as_tensor(spec.action_mask()).expand(batch_size, -1, -1).clone()
    if spec.discrete:
        avail[:, :, 0] = False  # choice 0 never available
    batch = {"state": torch.randn(batch_size, 7, generator=g), "obs": obs, "avail": avail}
    if memory_length:
        history = empty_history(batch_size, spec.n_agents, memory_length, spec.obs_dim, spec.action_dim)
        action = (
            torch.zeros(batch_size, spec.n_agents, dtype=torch.long)
            if spec.discrete
            else torch.zeros(batch_size, spec.n_agents, spec.action_dim)
        )
        history = push_history(*history, obs, encode_actions(action, spec))
        batch.update(history_obs=history[0], history_action=history[1], history_mask=history[2])
    history = [batch.get(k) for k in ("history_obs", "history_action", "history_mask")]
    actions, log_probs = model.act(obs, avail, *history, generator=g)
    batch.update(action=actions, old_log_prob=log_probs, advantage=torch.randn(batch_size, generator=g))
    batch["return"] = torch.randn(batch_size, generator=g)
    return batch


@pytest.mark.parametrize("spec", [DISCRETE, CONTINUOUS], ids=["discrete", "continuous"])
@pytest.mark.parametrize("share", [False, True], ids=["per-agent", "shared"])
@pytest.mark.parametrize("memory_length", [0, 3])
def test_shapes_and_gradients(spec: EnvSpec, share: bool, memory_length: int) -> None:
    torch.manual_seed(0)
    config = MAPPOConfig(hidden=(16,), memory_length=memory_length, memory_dim=8, share_parameters=share)
    model = MAPPOActorCritic(spec, 7, config)
    batch = make_batch(spec, model, 12, memory_length)
    n, a = spec.n_agents, spec.action_dim

    if spec.discrete:
        assert batch["action"].shape == (12, n) and batch["avail"].gather(-1, batch["action"].unsqueeze(-1)).all()
    else:
        assert batch["action"].shape == (12, n, a) and (batch["action"][:, 1, 2:] == 0).all()
    assert batch["old_log_prob"].shape == (12, n) and torch.isfinite(batch["old_log_prob"]).all()
    log_probs, entropy, values = model.evaluate_actions(batch)
    assert log_probs.shape == entropy.shape == (12, n) and values.shape == (12,)
    torch.testing.assert_close(log_probs, batch["old_log_prob"])  # same parameters: ratio 1
    history = [batch.get(k) for k in ("history_obs", "history_action", "history_mask")]
    torch.testing.assert_close(model.value(batch["state"], batch["obs"], *history), values)

    out = ppo_loss(model, batch, torch.full((n,), 0.1), config)
    assert out["agent_entropy"].shape == (n,)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")
    out["loss"].backward()

    groups = model.parameter_groups()
    grouped = [p for group in groups for p in group["params"]]
    assert len(grouped) == len({id(p) for p in grouped}) == len(list(model.parameters()))
    assert {g["name"]: g["lr"] for g in groups} == {
        "actor": config.actor_lr,
        "critic": config.critic_lr,
        **({"memory": config.memory_lr} if memory_length else {}),
    }
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_loss_is_float32_under_bf16_autocast() -> None:
    config = MAPPOConfig(hidden=(16,), memory_length=3, memory_dim=8)
    model = MAPPOActorCritic(CONTINUOUS, 7, config)
    batch = make_batch(CONTINUOUS, model, 12, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ppo_loss(model, batch, 0.1, config)
    assert all(v.dtype == torch.float32 for v in out.values())
    out["loss"].backward()


def test_action_penalty_uses_ratio_weighted_bound_error() -> None:
    config = MAPPOConfig(hidden=(16,), memory_length=0)
    model = MAPPOActorCritic(CONTINUOUS, 7, config)
    batch = make_batch(CONTINUOUS, model, 4, 0)
    batch["action"] = torch.zeros(4, 2, 3)
    batch["action"][:, 0, 0] = 2.0  # agent 0 one unit past the bound; agent 1 inside
    batch["action"][:, 1, 2] = 5.0  # padded dimension of agent 1: ignored
    batch["old_log_prob"] = model.evaluate_actions(batch)[0].detach()  # ratio 1
    out = ppo_loss(model, batch, 0.0, config)
    torch.testing.assert_close(out["action_penalty"], torch.tensor(0.5))  # mean over agents of (1.0, 0.0)


def test_mappo_learns_to_coordinate_in_a_matrix_game() -> None:
    """One-step two-agent game, reward 1 when both agents pick the same action."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        spec = EnvSpec("matrix", 2, (1, 1), 1, "discrete", (3, 3), 1)
        config = MAPPOConfig(hidden=(32, 32), actor_lr=3e-3, critic_lr=3e-3, memory_length=0, epochs=2)
        model = MAPPOActorCritic(spec, 1, config)
        optimizer = torch.optim.Adam(model.parameter_groups())
        alpha = torch.full((2,), config.initial_entropy_alpha)
        obs, state = torch.ones(64, 2, 1), torch.ones(64, 1)
        avail = torch.ones(64, 2, 3, dtype=torch.bool)
        one_step = torch.ones(1, 64)
        for _ in range(300):
            actions, log_probs = model.act(obs, avail)
            reward = (actions[:, 0] == actions[:, 1]).float()
            if reward.mean() > 0.95:
                break
            with torch.no_grad():
                values = model.value(state, obs)
            advantage, returns = timeout_gae(
                reward[None], values[None], 0 * one_step, 0 * one_step, one_step, config.gamma, config.gae_lambda
            )
            batch = {
                "state": state,
                "obs": obs,
                "avail": avail,
                "action": actions,
                "old_log_prob": log_probs,
                "advantage": advantage[0],
                "return": returns[0],
            }
            for _ in range(config.epochs):
                out = ppo_loss(model, batch, alpha, config)
                optimizer.zero_grad()
                out["loss"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
            alpha = update_entropy_alpha(alpha, out["agent_entropy"], config.entropy_target, config.entropy_coef_lr)
        greedy, _ = model.act(obs[:1], avail[:1], greedy=True)
        assert reward.mean() > 0.95
        assert greedy[0, 0] == greedy[0, 1]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("spec", [DISCRETE, CONTINUOUS], ids=["discrete", "continuous"])
def test_bc_loss_fits_dataset_actions(spec: EnvSpec) -> None:
    torch.manual_seed(0)
    actor = Actor(spec, hidden=(32,), memory_length=0)
    obs = torch.randn(32, spec.n_agents, spec.obs_dim)
    if spec.discrete:
        action = torch.ones(32, spec.n_agents, dtype=torch.long)  # choice 1 exists for every agent
    else:
        action = torch.full((32, spec.n_agents, spec.action_dim), 0.5) * torch.as_tensor(spec.action_mask())
    batch = {"obs": obs, "action": action}
    optimizer = torch.optim.Adam(actor.parameters(), lr=1e-2)
    first = bc_loss(actor, batch)
    for _ in range(100):
        loss = bc_loss(actor, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss < first
    greedy, _ = actor.act(obs, greedy=True)
    torch.testing.assert_close(greedy, action, atol=0.2, rtol=0.0)
    model = MAPPOActorCritic(spec, 7, MAPPOConfig(hidden=(8,), memory_length=0))
    assert torch.isfinite(bc_loss(model, batch))
