"""One short message for a failed start: what is wrong and what would be right, instead of the argument parser's
report of every union subtype it tried (and two tracebacks).

``LIGHTNING_MBMARL_VERBOSE=1`` (or ``--verbose`` on the command line) shows the full report and traceback instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import re
import typing
from pathlib import Path

VERBOSE_ENV = "LIGHTNING_MBMARL_VERBOSE"

_UNRECOGNIZED = re.compile(r"Problem with given class_path '([\w.]+)':\s*\n\s*unrecognized arguments: --([\w.]+)")
_PARSER_KEY = re.compile(r'Parser key "(\w+)"')
_QUOTED_ERROR = re.compile(r'^\s*- "(.+)"\s*$', re.M)
# one subtype's block of a union report: "- Problem with given class_path '<class>':" and its deeper-indented lines
_CLASS_PROBLEM = re.compile(r"^( *)- Problem with given class_path '([\w.]+)':[ \t]*\n((?:\1 +\S.*(?:\n|$))*)", re.M)
_NOT_ACCEPTED = re.compile(r"Option '([\w.]+)' is not accepted")
_NESTED_KEY = re.compile(r'^[ \t]*Parser key "([\w.]+)":[ \t]*(.*)$', re.M)
_NOT_A_CLASS_PATH = re.compile(r"Expected a dot import path string: (\S+)")
_EXPECTED = re.compile(r"^\s*- Expected a (.+)$", re.M)
_GIVEN_VALUE = re.compile(r"^\s*Given value: (.*)$", re.M)
_REQUIRED = re.compile(r"the following arguments are required: \w+\.(model|data)\b")
_CLASS_DEFINITION = re.compile(r"^class (\w+)\(", re.M)
_CLASS_FOLDERS = {"model": "algorithms", "data": "data"}  # where the package's classes for each section live


def short_message(error: BaseException) -> str:
    """The one-line (or few-line) explanation of a failed start; see the module docstring."""
    text = str(error)
    match = _PARSER_KEY.search(text)
    section = match.group(1) if match else "model"
    required = _REQUIRED.search(text)
    if required:
        return (
            f"no --{required.group(1)}: name an experiment's config, --config conf/<experiment>.yaml (one per method "
            "and task in conf/, e.g. conf/moma_ant_po.yaml), or give --model and --data"
        )
    unknown = _UNRECOGNIZED.search(text)
    if unknown:
        return unknown_option(section, unknown.group(1), unknown.group(2))
    not_a_class = _NOT_A_CLASS_PATH.search(text)
    if not_a_class:
        return unknown_class(section, not_a_class.group(1))
    problem = _CLASS_PROBLEM.search(text)
    if problem:
        return _class_problem(section, problem.group(2), problem.group(3))
    inner = [m for m in _QUOTED_ERROR.findall(text) if not m.startswith("Expected a")]
    if inner:  # a constructor's own error, wrapped in the parser's union report
        return inner[0]
    if "Does not validate against any of the Union subtypes" in text:
        lines = [line.strip(" -") for line in text.splitlines() if line.strip().startswith("- ")]
        useful = [line for line in lines if not line.startswith("Expected a")]
        if useful:
            return useful[0]
    option, given, expected = _NESTED_KEY.match(text), _GIVEN_VALUE.search(text), _EXPECTED.findall(text)
    if option and given and expected:  # a value that none of the option's types accepts
        return f"--{option.group(1)}={given.group(1)}: expected {' or '.join(_readable(t) for t in expected)}"
    if option:  # 'Parser key "trainer.max_steps":' and the parser's reason after it
        reason = [option.group(2)] + [line.strip() for line in text[option.end() :].splitlines()]
        return f"--{option.group(1)}: {' '.join(part for part in reason if part)}"
    return text.strip() or type(error).__name__


def _readable(type_text: str) -> str:
    """``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``; ``<class 'int'>`` -> ``int``; ``NoneType`` -> ``null``."""
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", type_text)
    if literal:
        return f"one of {literal.group(1)}"
    name = re.fullmatch(r"<class '([\w.]+)'>", type_text)
    if name:
        return "null" if name.group(1) == "NoneType" else name.group(1).rsplit(".", 1)[-1]
    return type_text


def unknown_class(section: str, name: str) -> str:
    """``--<section>=<name>`` names no class the parser can load (short names work only for classes already
    imported): say so, with the import paths of the package's classes closest to ``name``."""
    folder = _CLASS_FOLDERS.get(section)
    known: dict[str, str] = {}
    if folder is not None:
        package = importlib.import_module(f"lightning_mbmarl.{folder}")
        for source in sorted(Path(package.__path__[0]).glob("*.py")):
            for cls in _CLASS_DEFINITION.findall(source.read_text()):
                known.setdefault(cls.lower(), f"{package.__name__}.{source.stem}.{cls}")
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1].lower(), list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(f'--{section}={known[c]}' for c in close)}?" if close else ""
    return f"--{section}={name} names no class that loads (a short name works only once its module is imported){hint}"


def _class_problem(section: str, class_path: str, block: str) -> str:
    """One line for what the parser found wrong in ``class_path``'s options (``block``: the report's lines under
    it): an unknown option with the closest valid names, or the option's name with the parser's own reason."""
    not_accepted = _NOT_ACCEPTED.search(block)
    if not_accepted:
        return unknown_option(section, class_path, not_accepted.group(1))
    if "has no attribute" in block or "No module named" in block:
        return unknown_class(section, class_path)
    lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("- ")]
    nested = _NESTED_KEY.search(block)
    owner = class_path.rsplit(".", 1)[-1]
    if nested is None:
        return f"{owner} ({class_path}): " + " ".join(lines) if lines else f"{class_path}: its options do not parse"
    reason = " ".join([nested.group(2)] + [line for line in lines if not _NESTED_KEY.match(line)]).strip()
    return f"--{section}.init_args.{nested.group(1)} is not valid for {owner}: {reason}"


def unknown_option(section: str, class_path: str, key: str) -> str:
    """``--<section>.init_args.<key>`` is not an option of ``class_path``: say so, with the closest valid names."""
    option = f"--{section}.init_args.{key}"
    try:
        cls = getattr(importlib.import_module(class_path.rsplit(".", 1)[0]), class_path.rsplit(".", 1)[1])
    except (ImportError, AttributeError, ValueError):
        return f"unknown option {option} for {class_path}"
    parts = key.split(".")
    names, owner = _option_names(cls), cls.__name__
    prefix = f"--{section}.init_args."
    if len(parts) > 1 and parts[0] in names:
        config_type = _config_dataclass(cls, parts[0])
        if config_type is not None:
            names, owner = [f.name for f in dataclasses.fields(config_type)], f"{cls.__name__}'s {parts[0]}"
            prefix, parts = f"{prefix}{parts[0]}.", parts[1:]
    close = difflib.get_close_matches(parts[0], names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(prefix + c for c in close)}?" if close else f"; valid: {sorted(names)}"
    return f"unknown option {option} ({owner} has no {parts[0]!r}){hint}"


def _option_names(cls: type) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "args", "kwargs")]


def _config_dataclass(cls: type, name: str) -> type | None:
    hints = typing.get_type_hints(cls.__init__)
    candidate = hints.get(name)
    for option in typing.get_args(candidate) or (candidate,):
        if dataclasses.is_dataclass(option):
            return option  # type: ignore[return-value]
    return None
