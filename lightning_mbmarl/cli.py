"""Command line: ``python -m lightning_mbmarl {fit,validate,test} --config conf/<experiment>.yaml`` (LightningCLI)
and ``python -m lightning_mbmarl dataset {make,info} ...`` (dataset tools).

Every run gets its own folder ``<output_dir>/<experiment>/version_<k>/`` holding ``config.yaml``, TensorBoard
events, ``metrics.csv``, ``checkpoints/`` and plots. The experiment name defaults to the config file's name. The
folder is chosen once, by the launching process, and handed to DDP worker processes through an environment
variable, so every rank agrees on it. In a SLURM batch job the folder is ``slurm_<job>`` instead, the same for every
task of the job and found again when the job is requeued (:mod:`lightning_mbmarl.slurm`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from jsonargparse import ArgumentError, Namespace
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_warn

from lightning_mbmarl.callbacks.graceful_stop import GracefulStop
from lightning_mbmarl.cli_errors import VERBOSE_ENV, short_message
from lightning_mbmarl.config_includes import expand_config_includes
from lightning_mbmarl.data.hdf5_format import DatasetError
from lightning_mbmarl.nn.fast_path import keep_freed_memory, native_bf16
from lightning_mbmarl.slurm import LAST_CHECKPOINT, job_run_dir, slurm_job

RUN_DIR_ENV = "LIGHTNING_MBMARL_RUN_DIR"


def next_run_dir(output_dir: str | os.PathLike, experiment: str) -> Path:
    """``<output_dir>/<experiment>/version_<k>`` with the smallest unused ``k`` (created, so no other run takes it)."""
    root = Path(output_dir) / experiment
    root.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:
        candidate = root / f"version_{k}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            k += 1


def _class_config(class_path: str, **init_args) -> Namespace:
    """A class entry as LightningCLI writes it in a config: ``{class_path, init_args}``."""
    return Namespace(class_path=class_path, init_args=Namespace(**init_args))


def precision_warning(precision: str, accelerator: str) -> str | None:
    """A warning for trainer precisions that run slowly here: bf16 / fp16 mixed precision on a CPU without native
    bf16 dot products (emulated there: a user measured bf16-mixed about 6x slower than float32 on such a CPU)."""
    on_cpu = accelerator == "cpu" or (accelerator in ("auto", "None") and not torch.cuda.is_available())
    if on_cpu and precision.startswith(("bf16", "16")) and not native_bf16("cpu"):
        return (
            f"--trainer.precision={precision} on a CPU without native bf16 (AVX512-BF16 or AMX-BF16) is emulated "
            "(measured about 6x slower than 32-true on such a CPU); the methods' fast path already uses bf16 where it "
            "pays (--model.init_args.fast.bf16=auto)"
        )
    return None


def _more_than_one_device(devices) -> bool:
    if devices in (None, "auto"):
        return False
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    text = str(devices)
    if "," in text:
        return len([d for d in text.split(",") if d.strip()]) > 1
    return text == "-1" or (text.isdigit() and int(text) > 1)


class OptionError(ValueError):
    """An option that parsed but cannot be used: trainer settings Lightning refuses (an unknown accelerator, devices
    it cannot use), a --ckpt_path that is no file, a --trainer.default_root_dir holding another run."""


def _names_a_missing_file(checkpoint: str) -> bool:
    """Whether a --ckpt_path is a local path with no file there (not a name Lightning resolves itself, "best",
    "last", "hpc" or "registry[:...]", and not a remote URL)."""
    lightning_name = checkpoint in ("best", "last", "hpc") or checkpoint.startswith("registry")
    return not lightning_name and "://" not in checkpoint and not Path(checkpoint).is_file()


class MBMARLCLI(LightningCLI):
    """LightningCLI with per-run output folders, default loggers and the environment spec linked to the model."""

    def add_arguments_to_parser(self, parser) -> None:  # type: ignore[override]
        parser.add_argument(
            "--experiment",
            type=str | None,
            default=None,
            help="run folder name under --output_dir (default: the --config file's stem)",
        )
        parser.add_argument("--output_dir", type=str, default="outputs", help="where run folders are created")
        # The model's networks are sized from the environment the data module serves.
        parser.link_arguments(
            "data", "model.init_args.env_spec", compute_fn=lambda dm: dm.env_spec, apply_on="instantiate"
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_dir = os.environ.get(RUN_DIR_ENV)
        if run_dir is None:  # the launching process; DDP workers inherit its choice
            checkpoint = config.get("ckpt_path")
            if checkpoint and _names_a_missing_file(str(checkpoint)):
                raise OptionError(
                    f"--ckpt_path {checkpoint}: no such file (a run's checkpoints are <run folder>/checkpoints/"
                    "last.ckpt, e.g. outputs/<experiment>/version_0/checkpoints/last.ckpt)"
                )
            run_dir, resumed = self._choose_run_dir(config)
            os.environ[RUN_DIR_ENV] = run_dir
            if resumed:  # the run's own config.yaml stays; this part's config is written beside it
                parts = len(list(Path(run_dir).glob("config_resume_*.yaml")))
                self.save_config_kwargs = {
                    **self.save_config_kwargs,
                    "config_filename": f"config_resume_{parts + 1}.yaml",
                }
        config.trainer.default_root_dir = run_dir
        warning = precision_warning(str(config.trainer.get("precision")), str(config.trainer.get("accelerator")))
        if warning:
            rank_zero_warn(warning)
        if config.trainer.get("strategy", "auto") == "auto" and _more_than_one_device(config.trainer.get("devices")):
            # Each of our losses touches only some parameters (world model or policy), which plain DDP rejects.
            config.trainer.strategy = "ddp_find_unused_parameters_true"
        if config.trainer.get("logger") in (None, True):
            config.trainer.logger = [
                _class_config("lightning.pytorch.loggers.TensorBoardLogger", save_dir=run_dir, name="", version=""),
                _class_config("lightning_mbmarl.loggers.ResumableCSVLogger", save_dir=run_dir, name="", version=""),
            ]
        callbacks = list(config.trainer.get("callbacks") or [])
        present = {str(c.get("class_path", "")).rsplit(".", 1)[-1] for c in callbacks}
        if not present & {"ModelCheckpoint", "LastCheckpoint"}:
            # last.ckpt after every evaluation and at the end: what resuming and notebooks load.
            callbacks.append(_class_config("lightning_mbmarl.callbacks.checkpoint.LastCheckpoint"))
        for callback in callbacks:  # a run folder owns its last.ckpt: a resumed run overwrites it (not last-v1.ckpt)
            if str(callback.get("class_path", "")).endswith("ModelCheckpoint"):
                callback.init_args = callback.get("init_args") or Namespace()
                callback.init_args.enable_version_counter = False
        if "LearningCurvePlot" not in present:
            callbacks.append(_class_config("lightning_mbmarl.callbacks.learning_curve.LearningCurvePlot"))
        if "ProgressReport" not in present:
            # progress over the run's real length, one line per 30 s in a log file (Lightning's bar counts epochs)
            callbacks.append(_class_config("lightning_mbmarl.callbacks.progress.ProgressReport"))
            config.trainer.enable_progress_bar = False
        if "GracefulStop" not in present:
            # SIGTERM / SIGINT: last.ckpt at the next step boundary, then a non-zero exit.
            callbacks.append(_class_config("lightning_mbmarl.callbacks.graceful_stop.GracefulStop"))
        config.trainer.callbacks = callbacks

    def instantiate_trainer(self, **kwargs) -> Trainer:  # type: ignore[override]
        """The Trainer; Lightning's own errors about its settings become :class:`OptionError`, which a failed start
        reports in one line like any other bad option."""
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, TypeError, MisconfigurationException) as error:
            raise OptionError(f"--trainer: {error}") from error

    def _choose_run_dir(self, config) -> tuple[str, bool]:
        """The run's folder, and whether it continues a run that is already there.

        ``--trainer.default_root_dir DIR`` is the folder itself; ``fit --ckpt_path <run>/checkpoints/X.ckpt`` of a
        run made by this command line continues in ``<run>``; ``fit`` in a SLURM batch job uses ``<output_dir>/
        <experiment>/slurm_<job>`` and resumes from its ``last.ckpt`` when the job was requeued
        (:mod:`lightning_mbmarl.slurm`); otherwise a fresh ``<output_dir>/<experiment>/version_<k>`` (removed again
        by :func:`main` if the run fails before it starts).
        """
        checkpoint = config.get("ckpt_path")
        resumes = None
        if self.subcommand == "fit" and checkpoint and Path(str(checkpoint)).parent.name == "checkpoints":
            run = Path(str(checkpoint)).parent.parent
            resumes = run if (run / "config.yaml").exists() else None
        chosen = config.trainer.get("default_root_dir")
        if chosen:
            chosen = Path(chosen)
            other_run = resumes is not None and resumes.resolve() != chosen.resolve()
            if other_run or (resumes is None and (chosen / "config.yaml").exists()):
                raise OptionError(
                    f"--trainer.default_root_dir {chosen} already holds another run (its config.yaml): give a new "
                    f"folder, resume it with --ckpt_path {chosen / 'checkpoints' / 'last.ckpt'}, or leave the "
                    "folder to --output_dir, which makes a fresh <output_dir>/<experiment>/version_<k>"
                )
            chosen.mkdir(parents=True, exist_ok=True)
            return str(chosen), resumes is not None
        if resumes is not None:
            return str(resumes), True
        experiment_dir = Path(config.get("output_dir") or "outputs") / (
            config.get("experiment") or self._experiment_from_config_file(config)
        )
        job = slurm_job()
        if job is not None and self.subcommand == "fit" and not checkpoint:
            run, resumed = job_run_dir(experiment_dir, job)
            if resumed:
                config.ckpt_path = str(run / LAST_CHECKPOINT)
            return str(run), resumed
        return str(next_run_dir(experiment_dir.parent, experiment_dir.name)), False

    @staticmethod
    def _experiment_from_config_file(config) -> str:
        paths = config.get("config") or []
        if paths:
            return Path(str(paths[-1])).stem
        model = config.get("model")
        class_path = model.get("class_path") if model is not None else None
        return class_path.rsplit(".", 1)[-1].lower() if class_path else "run"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status: 0; 2 for bad input (one short message, :mod:`lightning_mbmarl.
    cli_errors`; ``--verbose`` or ``LIGHTNING_MBMARL_VERBOSE=1`` for the full report); ``128 + signal`` for a run
    stopped by SIGTERM / SIGINT."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "dataset":
        from lightning_mbmarl.data.dataset_tool import main as dataset_main

        return dataset_main(words[1:])
    if words and words[0] == "sweep":
        from lightning_mbmarl.sweeps.launch import main as sweep_main

        return sweep_main(words[1:])
    if words and words[0] == "report":
        from lightning_mbmarl.sweeps.report import main as report_main

        return report_main(words[1:])
    if words and words[0] == "render":
        from lightning_mbmarl.render import main as render_main

        return render_main(words[1:])
    verbose = bool(os.environ.get(VERBOSE_ENV)) or "--verbose" in words
    words = [w for w in words if w != "--verbose"]
    launching = RUN_DIR_ENV not in os.environ
    try:
        words = expand_config_includes(words)
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"python -m lightning_mbmarl: error: {error}", file=sys.stderr)
        return 2
    sys.argv = sys.argv[:1] + words  # LightningCLI reads its arguments from there (DDP workers re-run them)
    try:
        cli = build_cli()
    except BaseException as error:
        if launching:
            remove_unstarted_run(os.environ.get(RUN_DIR_ENV))
        if verbose or not _bad_input(error):
            raise
        print(
            f"python -m lightning_mbmarl: error: {short_message(error)}\n(--verbose or {VERBOSE_ENV}=1 shows the "
            "full report)",
            file=sys.stderr,
        )
        return 2
    stops = [c for c in cli.trainer.callbacks if isinstance(c, GracefulStop) and c.signal_received]
    return 128 + stops[0].signal_received if stops else 0


def _bad_input(error: BaseException) -> bool:
    """Whether ``error`` is bad input (config, options, data) rather than a failure of a running job."""
    from lightning_mbmarl.algorithms.base import CapabilityError

    if isinstance(error, (ArgumentError, DatasetError, CapabilityError, OptionError)):
        return True
    text = str(error) if isinstance(error, ValueError) else ""
    return "Does not validate against any of the Union subtypes" in text or "Problem with given class_path" in text


def remove_unstarted_run(run_dir: str | None) -> None:
    """Remove a fresh run folder whose run failed before it logged or saved anything (a typo, a missing dataset),
    so failed starts leave no empty ``version_<k>`` behind."""
    if not run_dir or not Path(run_dir).is_dir():
        return
    run = Path(run_dir)
    if (run / "checkpoints").exists() or (run / "metrics.csv").exists() or list(run.glob("config_resume_*.yaml")):
        return
    shutil.rmtree(run, ignore_errors=True)
    with contextlib.suppress(OSError):
        run.parent.rmdir()  # the experiment folder, if this was its only run


class _ArgumentsParsed(Exception):
    """Raised by :class:`_ParseOnlyCLI` once the command line parsed: nothing is instantiated."""

    def __init__(self, cli: _ParseOnlyCLI) -> None:
        super().__init__()
        self.cli = cli


class _ParseOnlyCLI(MBMARLCLI):
    """The package's CLI stopped once its command line parsed, before anything is built."""

    @classmethod
    def parsed(cls, args: list[str]) -> _ParseOnlyCLI:
        """The CLI after parsing ``args``: its parser checks further command lines."""
        try:
            cls(args=args, **_cli_kwargs())
        except _ArgumentsParsed as done:
            return done.cli
        raise AssertionError("unreachable: _ParseOnlyCLI stops before instantiating")

    def before_instantiate_classes(self) -> None:
        raise _ArgumentsParsed(self)


class ArgumentChecker:
    """Parses command lines of the package (``["fit", "--config", ...]``) without building or running anything:
    a call raises :class:`ValueError` with the command line's own short message (:func:`~lightning_mbmarl.
    cli_errors.short_message`) when a config key, option or class path is wrong. LightningCLI's parser (about 0.4 s
    to build) is built for the first command line and reused for the later ones. Sweeps check every grid point's
    command this way before any job starts."""

    def __init__(self) -> None:
        self._cli: _ParseOnlyCLI | None = None

    def __call__(self, args: list[str]) -> None:
        argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when the process has arguments of its own
        try:
            if self._cli is None:
                self._cli = _ParseOnlyCLI.parsed(expand_config_includes(args))
            else:  # what LightningCLI's constructor does before instantiating: parse, then read --ckpt_path's hparams
                self._cli.parse_arguments(self._cli.parser, expand_config_includes(args))
                self._cli._parse_ckpt_path()
        except BaseException as error:
            if not _bad_input(error):
                raise
            raise ValueError(short_message(error)) from error
        finally:
            sys.argv = argv


def _cli_kwargs() -> dict:
    return dict(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": False},
        parser_kwargs={"parser_mode": "omegaconf", "prog": "python -m lightning_mbmarl", "exit_on_error": False},
        auto_configure_optimizers=False,
    )


def build_cli(args: list[str] | None = None, run: bool = True) -> MBMARLCLI:
    """The package's LightningCLI; ``run=False`` only parses and instantiates (config checks, notebooks)."""
    keep_freed_memory()
    return MBMARLCLI(args=None if args is None else expand_config_includes(args), run=run, **_cli_kwargs())
