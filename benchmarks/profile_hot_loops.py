"""Profile of each hot loop, eager against the fast path: wall time, operations dispatched and the share of time in
matrix multiplies (torch.profiler, CPU).

The loops, at the sizes their configs train with (random data of the right shapes; no environment is stepped):

* MAMBA world-model update (``conf/mamba_smax_2s3z.yaml``: RSSM 256/32x32, 20-step windows; ``--batch`` windows):
  loss forward, backward, gradient clip and Adam step;
* MAMBA imagination: filtering the windows and 15 imagined steps with the policy from every filtered state;
* MAMBA PPO minibatch step (2000 imagined states, attention critic);
* MAG plan (``conf/mag_smax_2s3z.yaml``: one imagined step of every filtered state, 4 candidates scored over 6 steps by
  the bf16 look-ahead; R̂_m 2 x 256);
* MOMA-PPO ensemble training step (``conf/moma_ant_po.yaml``: 7 members x 3 x 200, batch 256);
* AORPO ego-ensemble training step (``conf/aorpo_mpe_spread.yaml``: 3 egos x 7 members x 3 x 200, batch 256).

    OMP_NUM_THREADS=1 python benchmarks/profile_hot_loops.py [--batch 8]

Prints one table: per loop and path, milliseconds per call (median of ``--calls``), aten operations per call and
the share of CPU time in GEMMs (mm, addmm, bmm, baddbmm, linear's matmuls).
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.latent_actor_critic import AttentionCriticConfig, LatentActorCritic, imagined_ppo_batch
from lightning_mbmarl.learners.mappo import ppo_loss
from lightning_mbmarl.nn.distributions import MaskedCategorical
from lightning_mbmarl.algorithms.mamba import MAMBA_PPO
from lightning_mbmarl.nn.fast_path import FastPath, FastPathConfig, keep_freed_memory
from lightning_mbmarl.rollouts.planning import LookAhead, PlanningConfig, plan_prediction
from lightning_mbmarl.world_models.ego_ensembles import EgoEnsembles
from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble, ensemble_loss
from lightning_mbmarl.world_models.imagination import imagine
from lightning_mbmarl.world_models.model_reward import ModelRewardConfig, ModelRewardPredictor
from lightning_mbmarl.world_models.rssm import RSSMConfig, RSSMWorldModel
from lightning_mbmarl.world_models.rssm_losses import world_model_loss
from timing import time_calls

#: SMAX 2s3z as the package's adapter presents it (5 agents, 127 observation entries, 10 choices; the global state
#: is not read by these loops)
SMAX_2S3Z = EnvSpec(
    name="smax",
    n_agents=5,
    obs_dims=(127,) * 5,
    state_dim=1,
    action_kind="discrete",
    action_sizes=(10,) * 5,
    episode_limit=100,
)
GEMMS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def replay_windows(B: int, L: int) -> dict[str, torch.Tensor]:
    spec = SMAX_2S3Z
    N, O, A = spec.n_agents, spec.obs_dim, spec.action_dim
    obs = torch.randn(B, L + 1, N, O)
    avail = torch.rand(B, L + 1, N, A) < 0.6
    avail[..., 0] = True
    return {
        "obs": obs[:, :-1],
        "next_obs": obs[:, 1:],
        "avail": avail[:, :-1],
        "next_avail": avail[:, 1:],
        "action": MaskedCategorical(torch.zeros(B, L, N, A), avail[:, :-1]).sample(),
        "reward": torch.randn(B, L),
        "agent_rewards": torch.randn(B, L, N),
        "terminated": torch.rand(B, L) < 0.02,
        "is_first": torch.rand(B, L) < 0.05,
    }


def latent_loops(fast: FastPath, batch_size: int) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    model = RSSMWorldModel(SMAX_2S3Z, RSSMConfig())
    actor_critic = LatentActorCritic(SMAX_2S3Z, model.layout, MAMBA_PPO, AttentionCriticConfig())
    model_optimizer = fast.adam(model.parameters(), lr=2e-4)
    policy_optimizer = fast.adam(actor_critic.parameter_groups())
    batch = replay_windows(batch_size, 20)
    alpha = torch.full((SMAX_2S3Z.n_agents,), MAMBA_PPO.initial_entropy_alpha)

    def world_model_update() -> None:
        with fast.autocast("cpu"):
            loss = fast.compile("world_model_loss", world_model_loss)(model, batch)["loss"]
        model_optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        model_optimizer.step()

    def imagination() -> dict[str, torch.Tensor]:
        with torch.no_grad(), fast.autocast("cpu"):
            start = model.eval().observe(batch).start.map(lambda x: x.flatten(0, 1))
            rollout = imagine(model, actor_critic.act, start, 15)
        model.train()
        return rollout

    with torch.no_grad():
        data = imagined_ppo_batch(actor_critic, imagination(), 0.99, 0.95)
    minibatch = {k: v[: MAMBA_PPO.minibatch_size] for k, v in data.items()}

    def ppo_step() -> None:
        with fast.autocast("cpu"):
            loss = fast.compile("ppo_loss", ppo_loss)(actor_critic, minibatch, alpha, MAMBA_PPO)["loss"]
        policy_optimizer.zero_grad()
        loss.backward()
        policy_optimizer.step()

    predictor = ModelRewardPredictor(model.feature_dim, ModelRewardConfig())
    with torch.no_grad():
        start = model.eval().observe(batch).start.map(lambda x: x.flatten(0, 1))
        look = LookAhead(model, predictor, actor_critic.policy, torch.bfloat16)  # MAG's config: bf16 look-ahead
        actions = model.actions.inputs(actor_critic.act(start.features, model.predict_avail(start.features))[0])
    model.train()
    planning = PlanningConfig()

    def plan() -> None:
        with torch.no_grad(), fast.autocast("cpu"):
            plan_prediction(
                model.eval(),
                predictor,
                actor_critic.policy,
                start,
                actions,
                planning.horizon,
                planning.candidates,
                look,
            )
        model.train()

    return {
        f"MAMBA world-model update (batch {batch_size})": world_model_update,
        f"MAMBA imagination (batch {batch_size}, 15 steps)": imagination,
        f"MAMBA PPO minibatch step ({minibatch['action'].shape[0]} states)": ppo_step,
        f"MAG plan ({start.deter.shape[0]} states, L={planning.candidates}, H={planning.horizon})": plan,
    }


def ensemble_loops(fast: FastPath) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    config = EnsembleConfig(hidden=(200, 200, 200), learning_rate=1e-3)
    moma = GaussianEnsemble(27, 8, config)
    aorpo = EgoEnsembles(3, 54, 15, config)
    optimizers = [fast.adam(m.parameters(), lr=1e-3) for m in (moma, aorpo)]
    B = 256
    moma_batch = {
        "state": torch.randn(B, 27),
        "action_features": torch.rand(B, 4, 2),
        "next_state": torch.randn(B, 27),
        "reward": torch.randn(B),
        "terminal": torch.zeros(B),
    }
    aorpo_batch = {
        "state": torch.randn(B, 54),
        "action_features": torch.rand(B, 3, 5),
        "next_state": torch.randn(B, 54),
        "reward": torch.randn(B),
        "agent_rewards": torch.randn(B, 3),
        "terminal": torch.zeros(B),
    }

    def step(loss_fn: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        def run() -> None:
            with fast.autocast("cpu"):
                loss = loss_fn()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return run

    moma_loss = fast.compile("world_model_loss", ensemble_loss)
    aorpo_loss = fast.compile("dynamics_loss", aorpo.loss)
    return {
        "MOMA-PPO ensemble step (7 x 3x200, batch 256)": step(
            lambda: moma_loss(moma, moma_batch)["loss"], optimizers[0]
        ),
        "AORPO ego-ensemble step (3 x 7 x 3x200, batch 256)": step(
            lambda: aorpo_loss(aorpo_batch)["loss"], optimizers[1]
        ),
    }


def profile_call(fn: Callable[[], None]) -> tuple[int, float]:
    """(aten operations dispatched, share of self CPU time in GEMMs) of one call."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMMS)
    return sum(e.count for e in events), gemm / max(total, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="replay windows per MAMBA batch (config: 40)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per loop and path")
    parser.add_argument("--fast-bf16", default="auto", choices=["auto", "on", "off"])
    args = parser.parse_args()
    keep_freed_memory()  # as the command line does before training
    paths = {
        "eager": FastPath(FastPathConfig(bf16="off", fused_adam=False)),
        "fast": FastPath(FastPathConfig(bf16=args.fast_bf16)),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); fast path bf16 {args.fast_bf16} "
        f"(enabled: {paths['fast'].bf16_enabled('cpu')})\n"
    )
    print("| loop | path | ms per call | aten ops per call | GEMM share |\n|---|---|---|---|---|")
    rows: dict[str, dict[str, float]] = {}
    for path, fast in paths.items():
        loops = {**latent_loops(fast, args.batch), **ensemble_loops(fast)}
        for name, fn in loops.items():
            seconds = time_calls(fn, args.calls, torch.device("cpu"), warmup=2)
            ops, gemm = profile_call(fn)
            rows.setdefault(name, {})[path] = seconds
            print(f"| {name} | {path} | {1e3 * seconds:.1f} | {ops} | {100 * gemm:.0f}% |", flush=True)
    print("\n" + ", ".join(f"{name}: {values['eager'] / values['fast']:.2f}x" for name, values in rows.items()))


if __name__ == "__main__":
    main()
