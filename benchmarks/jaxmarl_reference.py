"""How far SMAX's task goes for JaxMARL's own baseline: IPPO with a GRU (``baselines/IPPO/ippo_rnn_smax.py`` of a
JaxMARL checkout, with its own config ``baselines/IPPO/config/ippo_rnn_smax.yaml``) on one map against the same
heuristic enemy as the package's SMAX tasks (``HeuristicEnemySMAX``: attack mode "closest", enemy actions seen, walls
deadly). The baseline logs, once per update (128 environments x 128 steps), the win rate and return of the training
episodes that ended (actions sampled from the policy); this script writes those to a CSV instead of Weights & Biases.

The JaxMARL pip package has no baselines: clone the repository (``git clone https://github.com/FLAIROx/JaxMARL``) and
install what the baseline imports (``pip install distrax wandb``)::

    JAX_PLATFORMS=cpu python benchmarks/jaxmarl_reference.py --jaxmarl ~/JaxMARL --map 3m --total-steps 3e6 --seed 0 \
        --out benchmarks/results/jaxmarl_ippo_smax_3m_reference.csv        # appends
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import append_row  # noqa: E402

BASELINE = Path("baselines") / "IPPO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jaxmarl", type=Path, required=True, help="a JaxMARL repository checkout")
    parser.add_argument("--map", default="3m", help="SMAX map (the baseline's config: 2s3z)")
    parser.add_argument("--total-steps", type=float, default=3e6, help="environment steps (the config: 1e7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="results CSV to append to")
    args = parser.parse_args()

    script = args.jaxmarl / BASELINE / "ippo_rnn_smax.py"
    if not script.is_file():
        parser.error(f"--jaxmarl {args.jaxmarl}: no {BASELINE / 'ippo_rnn_smax.py'} there (a JaxMARL checkout has it)")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.jaxmarl, capture_output=True, text=True
    ).stdout.strip()
    sys.path.insert(0, str(script.parent))
    import jax
    import wandb

    import ippo_rnn_smax as baseline

    config = yaml.safe_load((script.parent / "config" / "ippo_rnn_smax.yaml").read_text())
    config = {key: value for key, value in config.items() if key not in ("ENTITY", "PROJECT", "WANDB_MODE")}
    config.update(MAP_NAME=args.map, TOTAL_TIMESTEPS=args.total_steps, SEED=args.seed)
    start = time.perf_counter()

    def record(values: dict) -> None:  # called by the baseline once per update, in place of wandb.log
        append_row(
            args.out,
            {
                "run": f"JaxMARL IPPO-RNN ({commit}, its SMAX config), {args.map}, seed {args.seed}",
                "env_steps": int(values["env_step"]),
                "train_won_rate": float(values["win_rate"]),
                "train_return": float(values["returns"]),
                "seconds": round(time.perf_counter() - start),
            },
        )

    wandb.log = record
    train = jax.jit(baseline.make_train(config))
    jax.block_until_ready(train(jax.random.PRNGKey(args.seed)))
    print(f"done in {time.perf_counter() - start:.0f} s: {args.out}")


if __name__ == "__main__":
    main()
