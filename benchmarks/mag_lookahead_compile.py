"""MAG's imagination with and without the compiled look-ahead step, paired inside one real ``fit``.

Every imagination of the run (``imagine_from``, one per policy round) runs twice on the same replay batch: once with
the look-ahead step compiled (``fast.compile``, ``fast.compile_loops=[planning_lookahead_step]``) and once without,
alternating which goes first. Pairs share the machine's load at that moment, so the ratio holds beside other jobs
where iteration times do not. Times are the thread's CPU time; the first iteration's pairs (compilation) are left out.

    OMP_NUM_THREADS=1 JAX_PLATFORMS=cpu python benchmarks/mag_lookahead_compile.py --iterations 2

Prints each pair and, last, ``imagination per round: plain <a> s, compiled <b> s (<a/b>x)`` (medians).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time

import torch

from lightning_mbmarl.nn.fast_path import keep_freed_memory
from timing import QUIET_TRAINER, timed_fit

VARIANTS = ("plain", "compiled")


def pair_imaginations(model, seconds: dict[str, list[float]], skip_calls: int):
    """Make ``model.imagine_from`` run both variants on each batch, recording thread CPU seconds per variant after
    the first ``skip_calls`` calls; the compiled variant's result is the one training goes on with."""
    imagine, fast = model.imagine_from, model.fast
    configs = {"compiled": fast.config, "plain": dataclasses.replace(fast.config, compile="none")}
    calls = 0

    def both(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nonlocal calls
        calls += 1
        results = {}
        for variant in VARIANTS if calls % 2 else VARIANTS[::-1]:
            fast.config = configs[variant]
            start = time.thread_time()
            results[variant] = imagine(batch)
            if calls > skip_calls:
                seconds[variant].append(time.thread_time() - start)
        fast.config = configs["compiled"]
        return results["compiled"]

    model.imagine_from = both
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", default="2s3z", help="SMAX map of conf/mag_smax_<map>.yaml")
    parser.add_argument("--batch-size", type=int, default=8, help="replay windows per batch (configs: 40)")
    parser.add_argument("--iterations", type=int, default=2, help="iterations with timed pairs, after the first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the CLI below gets its arguments explicitly
    keep_freed_memory()
    overrides = [
        f"--model.init_args.online.batch_size={args.batch_size}",
        "--model.init_args.online.total_env_steps=100000000",
        "--model.init_args.fast.compile=default",
        '--model.init_args.fast.compile_loops=["planning_lookahead_step"]',
        *QUIET_TRAINER,
        f"--seed_everything={args.seed}",
    ]
    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    config = f"conf/mag_smax_{args.map}.yaml"

    def pairing(model) -> dict[str, str]:
        return pair_imaginations(model, seconds, skip_calls=model.mamba.policy_rounds)

    with tempfile.TemporaryDirectory() as output_dir:
        timed_fit(config, [*overrides, f"--output_dir={output_dir}"], args.iterations, pairing)
    for plain, compiled in zip(seconds["plain"], seconds["compiled"]):
        print(f"pair: plain {plain:.2f} s, compiled {compiled:.2f} s")
    plain, compiled = (statistics.median(seconds[variant]) for variant in VARIANTS)
    print(f"imagination per round: plain {plain:.2f} s, compiled {compiled:.2f} s ({plain / compiled:.2f}x)")


if __name__ == "__main__":
    main()
