"""Loading a trained method from its Lightning checkpoint without knowing its class beforehand: the class is the one
the checkpoint names (a method of ``lightning_mbmarl.algorithms``, imported by name, as LightningCLI resolves a
``class_path``), so the data layer loads trained teams without importing the layer above it."""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path

import torch

from lightning_mbmarl.data.collection import TrainedTeam

_PACKAGE = "lightning_mbmarl.algorithms."


def checkpoint_class(path: str | os.PathLike[str]) -> type:
    """The method class (a ``MultiAgentAlgorithm`` subclass of ``lightning_mbmarl.algorithms``) a checkpoint holds.

    LightningCLI stores the model's class as ``hyper_parameters["_class_path"]`` (e.g.
    ``"lightning_mbmarl.algorithms.mappo.MAPPO"``); only classes of this package are imported.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path} is not a readable Lightning checkpoint (torch.load: {type(err).__name__})") from err
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    class_path = hparams.get("_class_path")
    if not isinstance(class_path, str) or not class_path.startswith(_PACKAGE):
        raise ValueError(
            f"checkpoint {path}: hyper_parameters['_class_path'] is {class_path!r}; expected the class of a "
            f"{_PACKAGE.rstrip('.')} method (as `python -m lightning_mbmarl fit` records it), e.g. "
            "'lightning_mbmarl.algorithms.mappo.MAPPO'"
        )
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    methods = ("load_from_checkpoint", "act")
    if not (isinstance(cls, type) and all(callable(getattr(cls, name, None)) for name in methods)):
        raise ValueError(
            f"checkpoint {path}: {class_path} is not a method of lightning_mbmarl.algorithms "
            "(a MultiAgentAlgorithm subclass)"
        )
    return cls


def load_algorithm(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> TrainedTeam:
    """The method a checkpoint holds, with its trained weights, in eval mode on ``map_location``."""
    cls = checkpoint_class(path)
    return cls.load_from_checkpoint(path, map_location=map_location).eval()


# What a policy file keeps of a training checkpoint: enough for load_algorithm, none of the training state
# (optimizer moments, loops, callbacks, replay buffers, RNG states).
_POLICY_KEYS = (
    "pytorch-lightning_version",
    "epoch",
    "global_step",
    "state_dict",
    "hparams_name",
    "hyper_parameters",
    "mbmarl_counters",
)


def export_policy(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the weights and hyperparameters of ``checkpoint`` (a training checkpoint) to a small policy file
    ``out`` that :func:`load_algorithm` reads; returns ``out``. The file is written atomically."""
    checkpoint_class(checkpoint)  # refuses files that are not checkpoints of this package's methods
    full = torch.load(checkpoint, map_location="cpu", weights_only=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    torch.save({key: full[key] for key in _POLICY_KEYS if key in full}, partial)
    load_algorithm(partial)  # the exported file must load before it replaces anything
    partial.replace(out)
    return out
