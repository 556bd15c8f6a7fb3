"""``python -m lightning_mbmarl COMMAND ...`` (also installed as ``lightning-mbmarl``): see :mod:`lightning_mbmarl.cli`.

The command list is answered here, before the command line's heavy imports (torch, Lightning: seconds of CPU).
"""

import sys

PROG = "python -m lightning_mbmarl"
USAGE = f"""usage: {PROG} COMMAND [options]

commands:
  fit        train a method: fit --config conf/<experiment>.yaml [--trainer.devices=N] [--ckpt_path=RUN/checkpoints/last.ckpt]
  validate   greedy evaluation of a checkpoint in the real environment: validate --config CONFIG --ckpt_path CKPT
  test       the same, logged as test/*: test --config CONFIG --ckpt_path CKPT
  dataset    offline HDF5 datasets: dataset make KIND ... | dataset info FILE
  sweep      a grid of runs on Hydra multirun: sweep --config-name <sweep in conf/sweeps> [point.seed=0,1,2] [hydra/launcher=joblib]
  report     a sweep's tables and learning-curve plots from its results file: report <sweep>
  render     a GIF of one greedy episode of a trained run: render --ckpt_path RUN/checkpoints/last.ckpt --out ep.gif

`{PROG} COMMAND --help` lists a command's options; the README has a quick start."""


def main() -> int:
    words = sys.argv[1:]
    if not words or words[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if words else 2
    from lightning_mbmarl.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
