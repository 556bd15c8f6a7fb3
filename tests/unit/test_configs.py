"""Every experiment YAML in conf/ parses and instantiates its model, data module and trainer."""

from pathlib import Path

import pytest
import yaml

from lightning_mbmarl.algorithms.base import MultiAgentAlgorithm
from lightning_mbmarl.cli import build_cli
from lightning_mbmarl.config_includes import include_chain
from lightning_mbmarl.envs import EnvConfig, make_env

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "conf").glob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS


def skip_if_the_game_is_missing(config: Path) -> None:
    """Configs of the ``smacv2`` environment need StarCraft II, which the data module builds to read the env spec:
    skip them where building the environment is what fails (the game or smacv2 is not installed)."""
    defining = [c for c in include_chain(config) if "data" in yaml.safe_load(c.read_text())][-1]
    data = yaml.safe_load(defining.read_text())["data"]
    if isinstance(data, str):  # the data module's config is a file of its own, relative to the file naming it
        data = yaml.safe_load((defining.parent / data).read_text())
    env = data["init_args"]["env"]
    if env["name"] != "smacv2":
        return
    try:
        make_env(EnvConfig(env["name"], env.get("kwargs", {}))).close()
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"{config.name} needs StarCraft II and smacv2: {str(err).splitlines()[0]}")


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_instantiates(config: Path, tmp_path: Path, monkeypatch):
    skip_if_the_game_is_missing(config)
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)
    monkeypatch.setattr("sys.argv", ["lightning_mbmarl"])
    cli = build_cli(["--config", str(config), f"--output_dir={tmp_path}"], run=False)
    assert isinstance(cli.model, MultiAgentAlgorithm)
    assert cli.model.env_spec == cli.datamodule.env_spec
    assert Path(cli.trainer.default_root_dir).parent == tmp_path / config.stem
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)


@pytest.mark.parametrize("name", ["moma_ant_fo", "moma_ant_po", "moma_ant_fo_paper", "moma_ant_po_paper"])
def test_ant_configs_end_model_rollouts_where_the_real_ant_ends_its_episode(name: str, tmp_path: Path, monkeypatch):
    """The Ant datasets hold too few terminations to learn (world_models/termination.py): the Ant configs give the
    model the task's rule, torso height (state 0, the ``torso_height`` field of the environment) outside [0.2, 1.0]."""
    monkeypatch.setattr("sys.argv", ["lightning_mbmarl"])
    cli = build_cli(["--config", str(CONFIGS[0].parent / f"{name}.yaml"), f"--output_dir={tmp_path}"], run=False)
    rule = cli.model.model_env.termination
    assert (rule.index, rule.low, rule.high) == (0, 0.2, 1.0)
    env = make_env(cli.datamodule.env)
    assert env.state_fields["torso_height"] == (0, 1)
    assert env._env.unwrapped._healthy_z_range == (rule.low, rule.high)
    env.close()
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)


def restated_defaults(config: Path) -> list[str]:
    """The model options a config sets to the method's own default (``section.key``): the method's dataclasses hold
    its defaults with their sources, a config states only what differs."""
    import dataclasses
    import importlib
    import inspect

    model = yaml.safe_load(config.read_text())["model"]
    module, name = model["class_path"].rsplit(".", 1)
    method = getattr(importlib.import_module(module), name)
    # a method may take its base's options through **kwargs (MAG: MAMBA's): each option's default is where declared
    parameters: dict[str, inspect.Parameter] = {}
    for cls in reversed(method.__mro__):
        if "__init__" in vars(cls):
            parameters.update(inspect.signature(cls.__init__).parameters)
    restated = []
    for section, values in (model.get("init_args") or {}).items():
        default = parameters[section].default if section in parameters else None
        if not (dataclasses.is_dataclass(default) and isinstance(values, dict)):
            continue
        for key, value in values.items():
            known = getattr(default, key, inspect.Parameter.empty)
            known = list(known) if isinstance(known, tuple) else known
            if value == known and isinstance(value, bool) == isinstance(known, bool):
                restated.append(f"{section}.{key}")
    return restated


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_states_only_what_differs_from_the_defaults(config: Path):
    restated = restated_defaults(config)
    assert not restated, (
        f"{config.name} restates the method's defaults {restated}: remove them (the dataclass "
        "holds the default and its source; `fit --config ... --print_config` shows every value)"
    )


def test_a_restated_default_is_found(tmp_path: Path):
    config = tmp_path / "restating.yaml"
    config.write_text(
        "model:\n  class_path: lightning_mbmarl.algorithms.mamba.MAMBA\n  init_args:\n"
        "    mamba: {sequence_length: 20, model_updates: 30}\n    online: {batch_size: 40}\n"
    )
    assert restated_defaults(config) == ["mamba.sequence_length", "online.batch_size"]
    config.write_text(  # MAG takes MAMBA's options through **kwargs: their defaults are MAMBA's
        "model:\n  class_path: lightning_mbmarl.algorithms.mag.MAG\n  init_args:\n"
        "    mamba: {model_updates: 60}\n    planning: {horizon: 6, candidates: 2}\n"
    )
    assert restated_defaults(config) == ["mamba.model_updates", "planning.horizon"]
