"""The ``dataset`` command: make the paper's offline datasets and summarise dataset files.

    python -m lightning_mbmarl dataset make icg --policy unfavorable --out data/icg_unfavorable.hdf5
    python -m lightning_mbmarl dataset make mamujoco --scenario Reacher --observation independent \\
        --policy expert_ccw.ckpt --policy expert_cw.ckpt --episodes 1000 --out data/reacher_expert_mix.hdf5
    python -m lightning_mbmarl dataset import-d4rl ant-medium-v2.hdf5 --observation partial --out data/ant.hdf5
    python -m lightning_mbmarl dataset reobserve data/ant_full_expert.hdf5 --observation partial --out data/ant_po.hdf5
    python -m lightning_mbmarl dataset convention outputs/mappo_reacher/version_0/checkpoints/last.ckpt
    python -m lightning_mbmarl dataset export-policy outputs/mappo_ant/version_0/checkpoints/last.ckpt --out ant.ckpt
    python -m lightning_mbmarl dataset info data/icg_unfavorable.hdf5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lightning_mbmarl.data import mamujoco_datasets
from lightning_mbmarl.data.checkpoints import export_policy
from lightning_mbmarl.data.collection import collect_dataset, icg_dataset_policy
from lightning_mbmarl.data.hdf5_format import DatasetError, OfflineDataset, read_dataset, write_dataset
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.envs.icg import DATASET_POLICIES
from lightning_mbmarl.reference_scores import reference_for


_ICG_RECIPE_OPTIONS = {"policy", "episodes", "episode_length", "seed"}
_RECIPE_KINDS = ("icg", "mamujoco")


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


def _make_icg_from_recipe(out: str | os.PathLike[str], recipe: dict[str, Any], env: EnvConfig) -> Path:
    options = {key: value for key, value in recipe.items() if key != "kind"}
    unknown = sorted(set(options) - _ICG_RECIPE_OPTIONS)
    if unknown:
        raise DatasetError(
            f"dataset recipe {recipe}: unknown option(s) {unknown}; icg takes {sorted(_ICG_RECIPE_OPTIONS)}"
        )
    options.setdefault("episode_length", env.kwargs.get("episode_length", 10))
    return make_icg_dataset(out, **options)


def make_dataset_from_recipe(out: str | os.PathLike[str], recipe: dict[str, Any], env: EnvConfig) -> Path:
    """Create the dataset a recipe describes, e.g. ``{"kind": "icg", "policy": "unfavorable", "episodes": 1000}``
    or ``{"kind": "mamujoco", "policy": "random", "episodes": 1000}`` (see
    :func:`~lightning_mbmarl.data.mamujoco_datasets.make_from_recipe`).

    Options left out take their defaults; the environment's options (icg ``episode_length``, the MaMuJoCo task)
    come from ``env``.
    """
    kind = recipe.get("kind")
    if kind == "icg":
        return _make_icg_from_recipe(out, recipe, env)
    if kind == "mamujoco":
        return mamujoco_datasets.make_from_recipe(out, recipe, env)
    raise DatasetError(f"dataset recipe {recipe}: unknown kind {kind!r}; known kinds: {list(_RECIPE_KINDS)}")


def make_command_hint(env: EnvConfig, out: str | os.PathLike[str]) -> str:
    """The shell command that creates a dataset for ``env`` at ``out``."""
    if env.name == "icg":
        return f"python -m lightning_mbmarl dataset make icg --policy {{{','.join(DATASET_POLICIES)}}} --out {out}"
    if env.name == "mamujoco":
        return mamujoco_datasets.make_command(env.kwargs, out)
    return "python -m lightning_mbmarl dataset make --help"


def example_recipe(env: EnvConfig) -> dict[str, Any] | None:
    """A ``make_if_missing`` recipe for ``env``'s family (None where no recipe kind makes its datasets)."""
    if env.name == "icg":
        return {"kind": "icg", "policy": "unfavorable", "episodes": 1000, "seed": 0}
    if env.name == "mamujoco":
        return {"kind": "mamujoco", "policy": "random", "episodes": 1000, "seed": 0}
    return None


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
    spec, config = dataset.spec, dataset.metadata["env_config"]
    returns, lengths = episode_scores(dataset)
    lines = [
        f"file               {path}",
        f"env                {spec.name} (config {config})",
        f"produced by        {dataset.metadata['produced_by']}",
        f"agents             {spec.n_agents} ({', '.join(spec.agent_names)})",
        f"transitions        {dataset.num_transitions}",
        f"episodes           {len(returns)}",
        _summary("episode length", lengths.astype(np.float64)),
        _summary("episode return", returns),
    ]
    reference = reference_for(config["name"], config.get("kwargs", {}))
    if reference is None:
        lines.append(f"normalized score   no reference scores for env {config['name']!r} {config.get('kwargs', {})}")
    else:
        scores = np.array([reference.normalize(r, n) for r, n in zip(returns, lengths)])
        lines.append(_summary("normalized score", scores))
    return "\n".join(lines)


def describe_conventions(source: str, conventions: mamujoco_datasets.ElbowConventions, rollouts: bool) -> str:
    """The elbow conventions of a checkpoint's greedy episodes (``rollouts``) or of a dataset's episodes."""
    what = "greedy episodes" if rollouts else "episodes"
    return "\n".join(
        [
            f"{'checkpoint' if rollouts else 'dataset':<18} {source}",
            f"{what:<18} {len(conventions.episode_angles)}",
            f"elbow angle        mean {conventions.mean_angle:+.4f} rad over the last half of each episode",
            f"convention         {conventions.convention}",
            f"episodes           {conventions.counter_clockwise_fraction:.1%} {mamujoco_datasets.COUNTER_CLOCKWISE}, "
            f"{conventions.clockwise_fraction:.1%} {mamujoco_datasets.CLOCKWISE}",
        ]
    )


def _add_make_parsers(make: argparse.ArgumentParser) -> None:
    kinds = make.add_subparsers(dest="kind", required=True)
    icg = kinds.add_parser("icg", help="Iterated Coordination Game dataset (MOMA-PPO Table 1)")
    icg.add_argument("--policy", required=True, choices=list(DATASET_POLICIES), help="dataset policy")
    icg.add_argument("--out", required=True, help="HDF5 file to write")
    icg.add_argument("--episodes", type=int, default=1000, help="episodes to collect")
    icg.add_argument("--episode-length", type=int, default=10, help="steps per episode")
    icg.add_argument("--seed", type=int, default=0, help="seed of the dataset policy")
    mj = kinds.add_parser("mamujoco", help="MaMuJoCo Ant / Reacher dataset of random or trained teams")
    mj.add_argument("--scenario", required=True, choices=sorted(mamujoco_datasets.DEFAULT_AGENT_CONF))
    mj.add_argument("--agent-conf", default=None, help="MaMuJoCo partition (default: Ant 4x2, Reacher 2x1)")
    mj.add_argument(
        "--observation",
        required=True,
        help="recorded observation function: Ant full / partial; Reacher all_observant / independent / leader_only",
    )
    mj.add_argument(
        "--policy",
        required=True,
        action="append",
        help="'random' or a Lightning checkpoint (.ckpt); repeat for a mixture of equal parts",
    )
    mj.add_argument("--episodes", type=int, required=True, help="episodes in all (split equally among policies)")
    mj.add_argument("--episode-length", type=int, default=None, help="steps per episode (default: the time limit)")
    mj.add_argument("--contact-cost-weight", type=float, default=None, help="Ant reward option (default: the task's)")
    mj.add_argument("--seed", type=int, default=0, help="seed of environments and policies")
    mj.add_argument("--greedy", action="store_true", help="trained policies take their mode instead of sampling")
    mj.add_argument("--out", required=True, help="HDF5 file to write")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbmarl dataset", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_make_parsers(commands.add_parser("make", help="collect one of the paper's datasets"))
    d4rl = commands.add_parser("import-d4rl", help="a D4RL ant-*-v2 file as a MaMuJoCo Ant 4x2 dataset")
    d4rl.add_argument("file", help="D4RL HDF5 file (observations [T, 111], actions [T, 8], ...)")
    d4rl.add_argument("--observation", required=True, choices=["full", "partial"], help="Ant observation function")
    d4rl.add_argument(
        "--contact-cost-weight",
        type=float,
        default=0.0,
        help="recorded env option (default 0.0: D4RL's Ant-v2 rewards carry no contact cost)",
    )
    d4rl.add_argument("--out", required=True, help="HDF5 file to write")
    convention = commands.add_parser("convention", help="elbow sign convention of a Reacher checkpoint or dataset")
    convention.add_argument("source", help="Lightning checkpoint (.ckpt) or HDF5 dataset file")
    convention.add_argument("--episodes", type=int, default=20, help="greedy episodes of a checkpoint")
    convention.add_argument("--seed", type=int, default=0, help="environment seed of a checkpoint's episodes")
    reobserve = commands.add_parser("reobserve", help="a MaMuJoCo dataset seen through another observation function")
    reobserve.add_argument("file", help="MaMuJoCo HDF5 dataset")
    reobserve.add_argument("--observation", required=True, help="observation function of the copy, e.g. partial")
    reobserve.add_argument("--out", required=True, help="HDF5 file to write")
    export = commands.add_parser("export-policy", help="a training checkpoint's policy as a small file to collect with")
    export.add_argument("checkpoint", help="Lightning checkpoint of a method of this package (.ckpt)")
    export.add_argument("--out", required=True, help="policy file to write (give it to `make --policy`)")
    info = commands.add_parser("info", help="summarise a dataset file")
    info.add_argument("file", help="HDF5 dataset file")
    return parser


def _make(args: argparse.Namespace) -> Path:
    if args.kind == "icg":
        return make_icg_dataset(args.out, args.policy, args.episodes, args.episode_length, args.seed)
    options = {} if args.contact_cost_weight is None else {"contact_cost_weight": args.contact_cost_weight}
    config = mamujoco_datasets.mamujoco_config(
        args.scenario, args.observation, args.agent_conf, args.episode_length, **options
    )
    return mamujoco_datasets.make_mamujoco_dataset(args.out, config, args.policy, args.episodes, args.seed, args.greedy)


def _convention(args: argparse.Namespace) -> str:
    source = Path(args.source)
    if not source.is_file():
        raise DatasetError(f"{source} does not exist; give a Reacher checkpoint (.ckpt) or dataset file")
    if h5py.is_hdf5(source):
        return describe_conventions(args.source, mamujoco_datasets.elbow_conventions(read_dataset(source)), False)
    conventions = mamujoco_datasets.policy_elbow_conventions(source, args.episodes, args.seed)
    return describe_conventions(args.source, conventions, True)


def main(argv: list[str]) -> int:
    """Run the ``dataset`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "convention":
            print(_convention(args))
            return 0
        if args.command == "info":
            print(describe_dataset(args.file))
            return 0
        if args.command == "export-policy":
            print(f"wrote {export_policy(args.checkpoint, args.out).resolve()}")
            return 0
        if args.command == "make":
            path = _make(args)
        elif args.command == "reobserve":
            path = write_dataset(args.out, mamujoco_datasets.reobserve(read_dataset(args.file), args.observation))
        else:
            path = write_dataset(
                args.out, mamujoco_datasets.import_d4rl_ant(args.file, args.observation, args.contact_cost_weight)
            )
        print(f"wrote {path.resolve()}")
        print(describe_dataset(path))
    except (DatasetError, ImportError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
