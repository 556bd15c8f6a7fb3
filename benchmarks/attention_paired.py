"""The agents' attention layers before and after ``AgentEncoderLayer`` (nn/attention.py), paired in one process.

A world-model update and a policy round (imagination + PPO minibatch steps) of MAMBA or MAG at the SMAX CPU
protocol's sizes, each on the same replay batch, alternating PyTorch's ``TransformerEncoderLayer.forward`` ("before")
with the package's ("now"), so that other jobs on the machine slow both alike. Prints thread CPU seconds, the median of
``--repeats`` pairs, and the ratio:

    OMP_NUM_THREADS=1 JAX_PLATFORMS=cpu python benchmarks/attention_paired.py --method mamba --map 2s3z --bf16 on
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from timing import QUIET_TRAINER, timed_fit  # noqa: E402

from lightning_mbmarl.nn.attention import AgentEncoderLayer  # noqa: E402

FORWARDS = {"before": nn.TransformerEncoderLayer.forward, "now": AgentEncoderLayer.forward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["mamba", "mag"], default="mamba")
    parser.add_argument("--map", choices=["3m", "2s3z"], default="2s3z")
    parser.add_argument("--bf16", choices=["on", "off"], default="on")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the CLI below gets its arguments explicitly
    built: dict = {}
    overrides = [
        "--model.init_args.online.total_env_steps=100000000",
        f"--model.init_args.fast.bf16={args.bf16}",
        "--model.init_args.mamba.model_updates=1",
        "--model.init_args.mamba.policy_rounds=1",
        "--trainer.accelerator=cpu",
        "--seed_everything=0",
        *QUIET_TRAINER,
    ]
    with tempfile.TemporaryDirectory() as output_dir:
        timed_fit(
            f"conf/{args.method}_smax_{args.map}_cpu.yaml",
            [*overrides, f"--output_dir={output_dir}"],
            1,
            lambda model: {},
            lambda cli, model: built.update(model=model, datamodule=cli.datamodule),
        )
    model = built["model"]
    batch = model._windows(built["datamodule"])
    parts = {"world-model update": model.learn_world_model, "policy round": model.learn_policy}
    seconds: dict[tuple[str, str], list[float]] = {(part, name): [] for part in parts for name in FORWARDS}
    for repeat in range(args.repeats):
        for name, forward in FORWARDS.items():
            AgentEncoderLayer.forward = forward
            for part, step in parts.items():
                torch.manual_seed(repeat)
                start = time.thread_time()
                step(batch)
                seconds[(part, name)].append(time.thread_time() - start)
    AgentEncoderLayer.forward = FORWARDS["now"]
    for part in parts:
        before, now = (statistics.median(seconds[(part, name)]) for name in FORWARDS)
        print(
            f"{args.method} {args.map} bf16 {args.bf16}, {part}: before {before:.3f} s, now {now:.3f} s, "
            f"before/now {before / now:.2f}x (thread CPU, median of {args.repeats})"
        )


if __name__ == "__main__":
    main()
