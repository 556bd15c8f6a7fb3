"""The ``dataset`` command: make the paper's offline datasets and summarise dataset files.

    python -m lightning_mbmarl dataset make icg --policy unfavorable --out data/icg_unfavorable.hdf5
    python -m lightning_mbmarl dataset info data/icg_unfavorable.hdf5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lightning_mbmarl.data.collection import collect_dataset, icg_dataset_policy
from lightning_mbmarl.data.hdf5_format import DatasetError, OfflineDataset, read_dataset, write_dataset
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.envs.icg import DATASET_POLICIES
from lightning_mbmarl.reference_scores import normalized_score


_ICG_RECIPE_OPTIONS = {"policy", "episodes", "episode_length", "seed"}


def make_icg_dataset(
    out: str | os.PathLike[str], policy: str, episodes: int = 1000, episode_length: int = 10, seed: int = 0
) -> Path:
    """Write the Iterated Coordination Game dataset of Table 1 (MOMA-PPO paper) collected by ``policy``."""
    if policy not in DATASET_POLICIES:
        raise ValueError(f"unknown icg dataset policy {policy!r}; choose one of {sorted(DATASET_POLICIES)}")
    p_right = DATASET_POLICIES[policy]
    dataset = collect_dataset(
        EnvConfig("icg", {"episode_length": episode_length}),
        icg_dataset_policy(p_right),
        episodes=episodes,
        seed=seed,
        produced_by=f"icg {policy} dataset policy: agents pick right with probabilities {p_right} (MOMA-PPO Table 1)",
    )
    return write_dataset(out, dataset)


def make_dataset_from_recipe(out: str | os.PathLike[str], recipe: dict[str, Any], env: EnvConfig) -> Path:
    """Create the dataset a recipe describes, e.g. ``{"kind": "icg", "policy": "unfavorable", "episodes": 1000}``.

    ``episode_length`` defaults to the environment's option; other options left out take their defaults.
    """
    if recipe.get("kind") != "icg":
        raise DatasetError(f"dataset recipe {recipe}: unknown kind {recipe.get('kind')!r}; known kinds: ['icg']")
    options = {key: value for key, value in recipe.items() if key != "kind"}
    unknown = sorted(set(options) - _ICG_RECIPE_OPTIONS)
    if unknown:
        raise DatasetError(
            f"dataset recipe {recipe}: unknown option(s) {unknown}; icg takes {sorted(_ICG_RECIPE_OPTIONS)}"
        )
    options.setdefault("episode_length", env.kwargs.get("episode_length", 10))
    return make_icg_dataset(out, **options)


def make_command_hint(env: EnvConfig, out: str | os.PathLike[str]) -> str:
    """The shell command that creates a dataset for ``env`` at ``out``."""
    if env.name == "icg":
        return f"python -m lightning_mbmarl dataset make icg --policy {{{','.join(DATASET_POLICIES)}}} --out {out}"
    return "python -m lightning_mbmarl dataset make --help"


def episode_scores(dataset: OfflineDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(returns float64 [E], lengths int64 [E])``: the team return and number of steps of every episode."""
    starts, ends = dataset.episode_bounds()
    returns = np.add.reduceat(dataset.rewards.astype(np.float64), starts)
    return returns, ends - starts + 1


def _summary(name: str, values: np.ndarray) -> str:
    return (
        f"{name:<18} min {values.min():.4f}  mean {values.mean():.4f}  "
        f"median {np.median(values):.4f}  max {values.max():.4f}"
    )


def describe_dataset(path: str | os.PathLike[str]) -> str:
    """A summary of a dataset file: environment, sizes, and the distribution of episode returns and scores."""
    dataset = read_dataset(path)
    spec = dataset.spec
    returns, lengths = episode_scores(dataset)
    lines = [
        f"file               {path}",
        f"env                {spec.name} (config {dataset.metadata['env_config']})",
        f"produced by        {dataset.metadata['produced_by']}",
        f"agents             {spec.n_agents} ({', '.join(spec.agent_names)})",
        f"transitions        {dataset.num_transitions}",
        f"episodes           {len(returns)}",
        _summary("episode length", lengths.astype(np.float64)),
        _summary("episode return", returns),
    ]
    try:
        scores = np.array([normalized_score(spec.name, r, n) for r, n in zip(returns, lengths)])
        lines.append(_summary("normalized score", scores))
    except KeyError:
        lines.append(f"normalized score   no reference scores for env {spec.name!r}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbmarl dataset", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="collect one of the paper's datasets")
    kinds = make.add_subparsers(dest="kind", required=True)
    icg = kinds.add_parser("icg", help="Iterated Coordination Game dataset (MOMA-PPO Table 1)")
    icg.add_argument("--policy", required=True, choices=list(DATASET_POLICIES), help="dataset policy")
    icg.add_argument("--out", required=True, help="HDF5 file to write")
    icg.add_argument("--episodes", type=int, default=1000, help="episodes to collect")
    icg.add_argument("--episode-length", type=int, default=10, help="steps per episode")
    icg.add_argument("--seed", type=int, default=0, help="seed of the dataset policy")
    info = commands.add_parser("info", help="summarise a dataset file")
    info.add_argument("file", help="HDF5 dataset file")
    return parser


def main(argv: list[str]) -> int:
    """Run the ``dataset`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "make":
            path = make_icg_dataset(args.out, args.policy, args.episodes, args.episode_length, args.seed)
            print(f"wrote {path.resolve()}")
            print(describe_dataset(path))
        else:
            print(describe_dataset(args.file))
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
