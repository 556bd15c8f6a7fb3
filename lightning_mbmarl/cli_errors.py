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

VERBOSE_ENV = "LIGHTNING_MBMARL_VERBOSE"

_UNRECOGNIZED = re.compile(r"Problem with given class_path '([\w.]+)':\s*\n\s*unrecognized arguments: --([\w.]+)")
_PARSER_KEY = re.compile(r'Parser key "(\w+)"')
_QUOTED_ERROR = re.compile(r'^\s*- "(.+)"\s*$', re.M)
# one subtype's block of a union report: "- Problem with given class_path '<class>':" and its deeper-indented lines
_CLASS_PROBLEM = re.compile(r"^( *)- Problem with given class_path '([\w.]+)':[ \t]*\n((?:\1 +\S.*(?:\n|$))*)", re.M)
_NOT_ACCEPTED = re.compile(r"Option '([\w.]+)' is not accepted")
_NESTED_KEY = re.compile(r'^[ \t]*Parser key "([\w.]+)":[ \t]*(.*)$', re.M)


def short_message(error: BaseException) -> str:
    """The one-line (or few-line) explanation of a failed start; see the module docstring."""
    text = str(error)
    unknown = _UNRECOGNIZED.search(text)
    if unknown:
        section = _PARSER_KEY.search(text)
        return unknown_option(section.group(1) if section else "model", unknown.group(1), unknown.group(2))
    problem = _CLASS_PROBLEM.search(text)
    if problem:
        section = _PARSER_KEY.search(text)
        return _class_problem(section.group(1) if section else "model", problem.group(2), problem.group(3))
    inner = [m for m in _QUOTED_ERROR.findall(text) if not m.startswith("Expected a")]
    if inner:  # a constructor's own error, wrapped in the parser's union report
        return inner[0]
    if "Does not validate against any of the Union subtypes" in text:
        lines = [line.strip(" -") for line in text.splitlines() if line.strip().startswith("- ")]
        useful = [line for line in lines if not line.startswith("Expected a")]
        return useful[0] if useful else text.splitlines()[0]
    return text.strip() or type(error).__name__


def _class_problem(section: str, class_path: str, block: str) -> str:
    """One line for what the parser found wrong in ``class_path``'s options (``block``: the report's lines under
    it): an unknown option with the closest valid names, or the option's name with the parser's own reason."""
    not_accepted = _NOT_ACCEPTED.search(block)
    if not_accepted:
        return unknown_option(section, class_path, not_accepted.group(1))
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
