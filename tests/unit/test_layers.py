"""The package's layers only point down: a module imports (at the top or inside a function) only from its own layer
or the layers below it, and ``world_models`` and ``learners`` never import each other.

Layers, lowest first (README, "Layout"):

0. ``envs``, ``nn``, ``reference_scores``, ``random_streams``, ``config_ranges``: environments, network building
   blocks, shared helpers
1. ``world_models``, ``learners``: models and learners, plain ``nn.Module`` s and loss functions
2. ``rollouts``, ``data``: rollouts in world models; datasets, replay and data modules
3. ``algorithms``: one LightningModule per method
4. ``callbacks``, ``loggers``, ``slurm``, ``render``, ``cli``, ``cli_errors``, ``sweeps``, ``__main__``: the command
   line and result grids
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lightning_mbmarl"
LAYERS = {
    "envs": 0,
    "nn": 0,
    "reference_scores": 0,
    "random_streams": 0,
    "config_ranges": 0,
    "world_models": 1,
    "learners": 1,
    "rollouts": 2,
    "data": 2,
    "algorithms": 3,
    "callbacks": 4,
    "loggers": 4,
    "slurm": 4,
    "render": 4,
    "cli": 4,
    "cli_errors": 4,
    "config_includes": 4,
    "__main__": 4,
    "__init__": 4,
    "sweeps": 4,
}
SIBLINGS_APART = {frozenset({"world_models", "learners"})}


def part_of(module: str) -> str:
    """``lightning_mbmarl.world_models.rssm`` -> ``world_models``."""
    return module.split(".")[1]


def imports_of(path: Path) -> set[str]:
    """The package's own modules ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_mbmarl."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lightning_mbmarl."))
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert parts <= set(LAYERS), (
        f"give {sorted(parts - set(LAYERS))} a layer in tests/unit/test_layers.py and the README"
    )


def test_imports_only_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        own = relative.split("/")[0].removesuffix(".py")
        for module in imports_of(path):
            other = part_of(module)
            if other == own:
                continue
            if LAYERS[other] > LAYERS[own]:
                upward.append(f"{relative} (layer {LAYERS[own]}) imports {module} (layer {LAYERS[other]})")
            if frozenset({own, other}) in SIBLINGS_APART:
                upward.append(f"{relative} imports {module}: {own} and {other} must not import each other")
    assert not upward, "imports that point up:\n" + "\n".join(upward)
