"""Cost of one MAG and one MABL training iteration against one MAMBA iteration, same settings, one process.

Each method is built from its SMAX config (``conf/<method>_smax_<map>.yaml``: MAG's is MAMBA's plus planning and R̂_m,
MABL's has the same schedule and widths with the bi-level world model) and trained for ``--iterations`` iterations
after warm-up; an iteration is one training step (collect ``env_steps_per_update`` environment steps,
``model_updates`` world-model steps and, for MAG, as many R̂_m steps, then ``policy_rounds`` rounds of imagination +
PPO epochs). The first iteration of each run is not timed (allocator and JIT warm-up). Methods alternate run by run
(``--repeats``) so machine load hits them alike.

Prints a per-phase breakdown (median seconds) and, last, ``<METHOD>/MAMBA iteration cost ratio: <x>`` for each other
method (ratios of median iteration times). Where the MAG config scores candidates in bf16 (``planning.lookahead_dtype``), it also prints, on
the trained model's start states, how often a plan chooses the candidate a float32 look-ahead chooses and how good
the chosen candidates are (:func:`lookahead_check`). ``--batch-size`` shrinks the replay windows per batch for both
methods (every phase scales with it, so the ratio stays comparable) when the full size is too slow for the machine.

    OMP_NUM_THREADS=1 python benchmarks/mag_mamba_cost.py --iterations 3 --batch-size 8
    OMP_NUM_THREADS=1 python benchmarks/mag_mamba_cost.py --methods mamba mabl --iterations 2 --batch-size 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from typing import Any

import torch
import torch.nn.functional as F

from lightning_mbmarl.algorithms.mamba import evaluation_mode
from lightning_mbmarl.rollouts.planning import LOOKAHEAD_DTYPES, LookAhead, plan_prediction
from timing import QUIET_TRAINER, timed_fit

METHODS = ("mamba", "mag", "mabl")
#: the methods each iteration's phases are timed by
PHASES = {
    "learn_world_model": "world-model steps (MAG: + R_m steps)",
    "learn_policy": "policy rounds (imagination + PPO)",
    "imagine_from": "of which imagination (MAG: with planning; MABL: both levels)",
}


#: fresh float32 futures each candidate is valued by in :func:`lookahead_check`
FUTURES = 32


@torch.no_grad()
def lookahead_check(model: Any, datamodule: Any, windows: int, seed: int) -> dict[str, float]:
    """How MAG's configured look-ahead precision chooses against float32, on one plan of the full horizon from the
    start states of ``windows`` replay windows (actions sampled by the policy, the same random draws for both).

    Returns ``agreement`` (share of samples choosing the same candidate) and, with each candidate valued by its mean
    float32 score over ``FUTURES`` fresh sampled futures, the mean value of the candidate chosen by float32 and by
    the configured precision, of a random candidate and of the best one (lower is better).
    """
    wm, predictor, policy, config = model.world_model, model.model_reward, model.actor_critic.policy, model.planning
    with evaluation_mode(wm):
        start = wm.observe(datamodule.sample_sequences(windows, model.mamba.sequence_length)).start
        start = start.map(lambda x: x.flatten(0, 1))
        actions = F.one_hot(policy(start.features, wm.predict_avail(start.features)).sample(), wm.action_dim).float()
        looks, plans = [], []
        for dtype in (torch.float32, LOOKAHEAD_DTYPES[config.lookahead_dtype]):
            torch.manual_seed(seed)
            looks.append(LookAhead(wm, predictor, policy, dtype))
            plans.append(
                plan_prediction(wm, predictor, policy, start, actions, config.horizon, config.candidates, looks[-1])
            )
        exact, low = plans
        classes = exact.first.stoch.unflatten(-1, (wm.config.categoricals, wm.config.classes)).argmax(dim=-1)
        value = torch.stack([looks[0].score(exact.first.deter, classes, config.horizon) for _ in range(FUTURES)]).mean(
            0
        )  # [B, L]

    def chosen(choice: torch.Tensor) -> float:
        return value.gather(1, choice.unsqueeze(1)).mean().item()

    return {
        "agreement": (exact.choice == low.choice).float().mean().item(),
        "float32": chosen(exact.choice),
        config.lookahead_dtype: chosen(low.choice),
        "random": value.mean().item(),
        "best": value.min(dim=1).values.mean().item(),
    }


def run(method: str, args: argparse.Namespace, output_dir: str) -> tuple[list[float], dict[str, float]]:
    """Train ``method`` for ``args.iterations + 1`` iterations; (timed iteration seconds, seconds per phase)."""
    overrides = [
        f"--model.init_args.online.batch_size={args.batch_size}",
        "--model.init_args.online.total_env_steps=100000000",
        *QUIET_TRAINER,
        f"--output_dir={output_dir}",
        f"--seed_everything={args.seed}",
    ]

    def check_lookahead(cli, model) -> None:
        if method != "mag" or model.planning.lookahead_dtype == "float32":
            return
        check = lookahead_check(model, cli.datamodule, args.batch_size, args.seed)
        print(
            f"mag: {model.planning.lookahead_dtype} look-ahead chose the float32 look-ahead's candidate for "
            f"{100 * check.pop('agreement'):.1f}% of {args.batch_size * model.mamba.sequence_length} start states; "
            f"mean value of the chosen candidate (mean R_m score over {FUTURES} float32 futures, lower is better): "
            + ", ".join(f"{name} {value:.4f}" for name, value in check.items()),
            flush=True,
        )

    times, phases, _ = timed_fit(
        f"conf/{method}_smax_{args.map}.yaml", overrides, args.iterations, lambda model: PHASES, check_lookahead
    )
    print(f"{method}: timed iterations {[round(t, 2) for t in times]} s", flush=True)
    return times, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="2s3z", help="SMAX map of the configs to compare")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each method, alternating")
    parser.add_argument("--batch-size", type=int, default=40, help="replay windows per batch (config: 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=METHODS,
        help="methods to time (MAMBA, the reference, is always timed)",
    )
    args = parser.parse_args()
    methods = ["mamba", *[m for m in args.methods if m != "mamba"]]
    sys.argv = sys.argv[:1]  # the CLI below gets its arguments explicitly
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); map {args.map}, batch {args.batch_size} "
        f"windows, {args.iterations} timed iteration(s) x {args.repeats} run(s) per method"
    )
    times: dict[str, list[float]] = {m: [] for m in methods}
    phases: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as output_dir:
        for _ in range(args.repeats):
            for method in methods:
                iteration_times, per_phase = run(method, args, output_dir)
                times[method] += iteration_times
                phases[method].append(per_phase)
    print("\n| phase (s per timed iteration) | " + " | ".join(m.upper() for m in methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for name in phases["mamba"][0]:
        print(
            f"| {name} | " + " | ".join(f"{statistics.median(p[name] for p in phases[m]):.2f}" for m in methods) + " |"
        )
    median = {m: statistics.median(times[m]) for m in methods}
    print("| whole iteration (median of timed) | " + " | ".join(f"{median[m]:.2f}" for m in methods) + " |\n")
    for method in methods[1:]:
        print(f"{method.upper()}/MAMBA iteration cost ratio: {median[method] / median['mamba']:.2f}")


if __name__ == "__main__":
    main()
