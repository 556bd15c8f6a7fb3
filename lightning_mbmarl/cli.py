"""Command line: ``python -m lightning_mbmarl {fit,validate,test} --config conf/<experiment>.yaml`` (LightningCLI)
and ``python -m lightning_mbmarl dataset {make,info} ...`` (dataset tools).

Every run gets its own folder ``<output_dir>/<experiment>/version_<k>/`` holding ``config.yaml``, TensorBoard
events, ``metrics.csv``, ``checkpoints/`` and plots. The experiment name defaults to the config file's name. The
folder is chosen once, by the launching process, and handed to DDP worker processes through an environment
variable, so every rank agrees on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from lightning_mbmarl.nn.fast_path import keep_freed_memory

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


def _more_than_one_device(devices) -> bool:
    if devices in (None, "auto"):
        return False
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    text = str(devices)
    if "," in text:
        return len([d for d in text.split(",") if d.strip()]) > 1
    return text == "-1" or (text.isdigit() and int(text) > 1)


class MBMARLCLI(LightningCLI):
    """LightningCLI with per-run output folders, default loggers and the environment spec linked to the model."""

    def add_arguments_to_parser(self, parser) -> None:  # type: ignore[override]
        parser.add_argument("--experiment", type=str | None, default=None,
                            help="run folder name under --output_dir (default: the --config file's stem)")
        parser.add_argument("--output_dir", type=str, default="outputs", help="where run folders are created")
        # The model's networks are sized from the environment the data module serves.
        parser.link_arguments("data", "model.init_args.env_spec", compute_fn=lambda dm: dm.env_spec,
                              apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_dir = os.environ.get(RUN_DIR_ENV)
        if run_dir is None:
            experiment = config.get("experiment") or self._experiment_from_config_file(config)
            run_dir = str(next_run_dir(config.get("output_dir") or "outputs", experiment))
            os.environ[RUN_DIR_ENV] = run_dir  # inherited by DDP worker processes
        config.trainer.default_root_dir = run_dir
        if config.trainer.get("strategy", "auto") == "auto" and _more_than_one_device(config.trainer.get("devices")):
            # Each of our losses touches only some parameters (world model or policy), which plain DDP rejects.
            config.trainer.strategy = "ddp_find_unused_parameters_true"
        if config.trainer.get("logger") in (None, True):
            config.trainer.logger = [
                _class_config("lightning.pytorch.loggers.TensorBoardLogger", save_dir=run_dir, name="", version=""),
                _class_config("lightning.pytorch.loggers.CSVLogger", save_dir=run_dir, name="", version=""),
            ]
        callbacks = list(config.trainer.get("callbacks") or [])
        present = {str(c.get("class_path", "")).rsplit(".", 1)[-1] for c in callbacks}
        if "ModelCheckpoint" not in present:
            # last.ckpt after every evaluation and at the end: what resuming and notebooks load.
            callbacks.append(_class_config("lightning.pytorch.callbacks.ModelCheckpoint", save_last=True, save_top_k=0))
        if "LearningCurvePlot" not in present:
            callbacks.append(_class_config("lightning_mbmarl.callbacks.learning_curve.LearningCurvePlot"))
        config.trainer.callbacks = callbacks

    @staticmethod
    def _experiment_from_config_file(config) -> str:
        paths = config.get("config") or []
        if paths:
            return Path(str(paths[-1])).stem
        model = config.get("model")
        class_path = model.get("class_path") if model is not None else None
        return class_path.rsplit(".", 1)[-1].lower() if class_path else "run"


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "dataset":
        from lightning_mbmarl.data.dataset_tool import main as dataset_main

        return dataset_main(words[1:])
    build_cli(argv)  # None: LightningCLI reads sys.argv itself
    return 0


def build_cli(args: list[str] | None = None, run: bool = True) -> MBMARLCLI:
    """The package's LightningCLI; ``run=False`` only parses and instantiates (config checks, notebooks)."""
    keep_freed_memory()
    return MBMARLCLI(
        args=args,
        run=run,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": False},
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
    )
