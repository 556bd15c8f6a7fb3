"""``python -m lightning_mbmarl sweep --config-name <sweep> [Hydra overrides]``: Hydra multirun over a sweep file.

The sweep file (``conf/sweeps/<sweep>.yaml``; another folder with ``--config-path``) names the grid under
``hydra.sweeper.params``; more grid keys, or a launcher, come from the command line as in any Hydra app::

    python -m lightning_mbmarl sweep --config-name aorpo_climb point.seed=0,1 hydra/launcher=joblib \\
        hydra.launcher.n_jobs=2

Before any job starts every grid point is composed and its command line parsed (:func:`check_sweep`): an unknown
config file, an unknown key or an empty grid fails with one message. Each job then runs one point
(:class:`~lightning_mbmarl.sweeps.point.PointRun`): finished points are skipped, interrupted ones resume.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_mbmarl.sweeps.point import PointRun, fit_command, make_point
from lightning_mbmarl.sweeps.schema import register

PROG = "python -m lightning_mbmarl sweep"
DEFAULT_CONFIG_PATH = Path("conf") / "sweeps"


class SweepError(ValueError):
    """A sweep that cannot start: what is wrong, before any job ran."""


def grid_jobs(params: dict[str, str], overrides: list[str]) -> list[list[str]]:
    """Every grid point's overrides: the product of the sweep file's ``hydra.sweeper.params`` and the command
    line's overrides (``key=a,b`` and ``key=range(3)`` sweep; ``key=a`` sets, replacing the sweep file's values), as
    Hydra's basic sweeper expands them."""
    lines = [f"{key}={value}" for key, value in params.items()] + overrides
    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)[0]


def check_sweep(config_dir: Path, config_name: str, overrides: list[str]) -> list[list[str]]:
    """Compose every grid point of a sweep and parse its ``fit`` command line; returns the points' overrides.
    Raises :class:`SweepError` naming the first wrong thing: the sweep file, a key, a config file, an option, or
    an empty grid. Under a sweeper other than the basic one (a search, e.g. Optuna) the points are not known in
    advance: the sweep file and its base point are checked."""
    from lightning_mbmarl.cli import ArgumentChecker

    _require_sweep_file(config_dir, config_name)
    parsed = OverridesParser.create().parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    swept = [o.input_line for o in parsed if o.is_sweep_override()]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir.resolve()), version_base="1.3"):
            base = _compose(config_name, fixed, hydra_config=True)
            params = dict(base.hydra.sweeper.get("params") or {})
            if base.hydra.sweeper._target_.endswith(".BasicSweeper"):
                jobs = grid_jobs(params, list(overrides))
                if not (params or swept) or not jobs:
                    raise SweepError(
                        f"{config_name}: the grid is empty: name at least one key with values under "
                        "hydra.sweeper.params in the sweep file (e.g. point.seed: range(3)) or on the "
                        "command line (point.seed=0,1,2)"
                    )
            else:  # a search: its points are not known in advance; the base point and the searched keys are
                jobs = [fixed]
                _check_search(base, params)
            checked: set[tuple[str, ...]] = set()
            check_arguments = ArgumentChecker()  # one parser for every point's command
            for job in jobs:
                point = make_point(_compose(config_name, job).point, job)
                command = tuple(fit_command(point, Path("checked"), resume=False)[3:])
                # a point's seed is an int (make_point), valid in any command that parses: one seed of each
                # otherwise equal command is parsed (a 96-point grid of 3 seeds parses 32 commands, not 96)
                unseeded = tuple(arg for arg in command if not arg.startswith("--seed_everything="))
                if unseeded in checked:
                    continue
                checked.add(unseeded)
                if not Path(point.config).is_file():
                    raise SweepError(f"point {job}: no config file {point.config} (relative to {Path.cwd()})")
                try:
                    check_arguments(list(command))
                except ValueError as error:
                    raise SweepError(f"point {' '.join(job) or '(base)'}: {error}") from error
    finally:
        GlobalHydra.instance().clear()
    return jobs


def _check_search(base: DictConfig, params: dict[str, str]) -> None:
    """A search needs an objective among the recorded metrics, and every searched key in the sweep file."""
    objective = base.sweep.get("objective")
    if not objective or objective not in base.sweep.metrics:
        raise SweepError(
            f"a search maximises or minimises sweep.objective, a metric of sweep.metrics "
            f"{list(base.sweep.metrics)}; it is {objective!r}"
        )
    if not params:
        raise SweepError("the search space is empty: name keys and ranges under hydra.sweeper.params")
    for key in params:
        if OmegaConf.select(base, key, default=_ABSENT) is _ABSENT:
            raise SweepError(
                f"searched key {key} is not in the sweep file: give it a default there (Optuna's sweeper "
                "sets keys, it cannot add them)"
            )


_ABSENT = object()


def load_settings(config_dir: Path, config_name: str, overrides: list[str]) -> dict[str, Any]:
    """A sweep file's ``sweep`` section, composed with ``overrides`` and resolved (what ``report`` reads)."""
    _require_sweep_file(config_dir, config_name)
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir.resolve()), version_base="1.3"):
            return OmegaConf.to_container(_compose(config_name, overrides).sweep, resolve=True)
    finally:
        GlobalHydra.instance().clear()


def _require_sweep_file(config_dir: Path, config_name: str) -> None:
    """A sweep named by ``--config-name`` is a file ``<config_dir>/<name>.yaml``: if not, name the sweeps there."""
    if (config_dir / f"{config_name.removesuffix('.yaml')}.yaml").is_file():
        return
    sweeps = sorted(path.stem for path in config_dir.glob("*.yaml"))
    if not config_name:
        raise SweepError(f"name a sweep: one of the files in {config_dir}: {', '.join(sweeps) or 'none'}")
    close = difflib.get_close_matches(config_name, sweeps, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise SweepError(f"no sweep {config_name!r} in {config_dir}: {hint}the sweeps there: {', '.join(sweeps) or 'none'}")


def _compose(config_name: str, overrides: list[str], hydra_config: bool = False) -> DictConfig:
    try:
        return compose(config_name, overrides=overrides, return_hydra_config=hydra_config)
    except (HydraException, OmegaConfBaseException) as error:
        raise SweepError(f"{config_name} {' '.join(overrides)}: {error}".strip()) from error


def run_point(config: DictConfig) -> dict[str, Any] | float:
    """Hydra's task function: one job = one grid point. Returns its results row, or under a search (with
    ``sweep.objective``) the objective's final value."""
    settings = config.sweep
    point = make_point(OmegaConf.to_container(config.point, resolve=True), list(HydraConfig.get().overrides.task))
    run = PointRun(
        point,
        settings.output_dir,
        settings.name,
        settings.results,
        list(settings.metrics),
        settings.threads,
        {key: str(value) for key, value in settings.env.items()},
    )
    row = run.run(rank=int(os.environ.get("SLURM_PROCID", "0")))
    return float(row[settings.objective]) if settings.objective and row else row


def main(words: list[str]) -> int:
    """The ``sweep`` command; the exit status (2: the sweep could not start)."""
    args = get_args_parser().parse_args(words)
    if args.help or not args.config_name:
        print(
            f"usage: {PROG} --config-name SWEEP [--config-path DIR] [hydra overrides ...]\n\n"
            f"SWEEP is a file of {DEFAULT_CONFIG_PATH}/ (DIR: another folder). Overrides set or sweep any key "
            "(point.seed=0,1,2; +point.args.trainer.max_steps=100) and choose the launcher (hydra/launcher="
            "joblib hydra.launcher.n_jobs=2; hydra/launcher=submitit_slurm); see the README's Sweeps section."
        )
        return 0 if args.help else 2
    register()
    config_dir = Path(args.config_path or DEFAULT_CONFIG_PATH).resolve()
    try:
        check_sweep(config_dir, args.config_name, list(args.overrides))
    except SweepError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    sys.argv = [PROG, "--multirun", f"--config-path={config_dir}", *_without_config_path(words)]
    hydra.main(version_base="1.3", config_path=None, config_name=None)(run_point)()
    return 0


def _without_config_path(words: list[str]) -> list[str]:
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("--config-path", "-cp"):
            skip = True
        elif not word.startswith("--config-path="):
            kept.append(word)
    return kept
