"""Experiment files built on another: a top-level ``config: <file>`` key names the file an experiment extends.

``config`` is jsonargparse's own key for a config file inside a config file, so such a file stays valid
LightningCLI input. Read alone, though, jsonargparse applies the included file and then replaces the whole ``model``
section when the extending file names another class (MAG after MAMBA), dropping the included options. On the command
line, ``--config base.yaml --config extending.yaml`` keeps them: a changed ``class_path`` keeps every option the new
class also takes. So the package's command line passes each included file as a ``--config`` of its own, before the
file that includes it (:func:`expand_config_includes`); ``conf/mag_*.yaml`` are MAMBA's files plus MAG's blocks this
way. Paths are relative to the including file, as jsonargparse reads them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

INCLUDE_KEY = "config"


def included_file(config: Path) -> Path | None:
    """The file ``config`` extends (its top-level ``config:`` key, relative to it), or ``None``. Raises ``ValueError``
    when ``config`` holds one class's settings (a part such as ``conf/data/*.yaml``) rather than an experiment."""
    if config.suffix not in (".yaml", ".yml") or not config.is_file():
        return None
    content = yaml.safe_load(config.read_text())
    if isinstance(content, dict) and ("class_path" in content or "init_args" in content):
        raise ValueError(_one_class_message(config, str(content.get("class_path", ""))))
    target = content.get(INCLUDE_KEY) if isinstance(content, dict) else None
    if target is None:
        return None
    if not isinstance(target, str):
        raise ValueError(f"{config}: `{INCLUDE_KEY}:` names one file to extend, a path relative to {config.parent}")
    return config.parent / target


def _one_class_message(config: Path, class_path: str) -> str:
    """Why a file of one class's settings (``class_path`` / ``init_args``, e.g. ``conf/data/*.yaml``) is no
    ``--config``, and where it goes instead."""
    section = "data" if ".data." in class_path else "model"
    return (
        f"--config {config} holds one class's settings (class_path / init_args), not an experiment: an experiment "
        f"file has model:, data: and trainer: sections (conf/<experiment>.yaml). Give this one as --{section}={config}, "
        f"or name it in an experiment file as `{section}: {config.parent.name}/{config.name}`"
    )


def include_chain(config: Path) -> list[Path]:
    """``config`` and the files it extends, the most basic first: ``[mamba_x.yaml, mag_x.yaml]``."""
    chain = [config]
    while (base := included_file(chain[0])) is not None:
        if base.resolve() in {c.resolve() for c in chain}:
            raise ValueError(f"{config}: the `{INCLUDE_KEY}:` includes go round in a circle through {base}")
        chain.insert(0, base)
    return chain


def expand_config_includes(args: list[str]) -> list[str]:
    """``args`` with every ``--config FILE`` preceded by ``--config`` of each file it extends (idempotent: a chain
    already spelled out is left as it is)."""
    expanded: list[str] = []
    configs: list[str] = []  # the --config files so far, in order
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--config" and i + 1 < len(args):
            path, step = args[i + 1], 2
        elif word.startswith("--config="):
            path, step = word.split("=", 1)[1], 1
        else:
            expanded.append(word)
            i += 1
            continue
        bases = [str(base) for base in include_chain(Path(path))[:-1]]
        if bases and configs[-len(bases) :] != bases:
            for base in bases:
                expanded += ["--config", base]
            configs += bases
        configs.append(path)
        expanded += args[i : i + step]
        i += step
    return expanded
