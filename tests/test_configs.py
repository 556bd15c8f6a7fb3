"""Every experiment YAML in conf/ parses and instantiates its model, data module and trainer."""

from pathlib import Path

import pytest

from lightning_mbmarl.algorithms.base import MultiAgentAlgorithm
from lightning_mbmarl.cli import build_cli

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "conf").glob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_instantiates(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)
    monkeypatch.setattr("sys.argv", ["lightning_mbmarl"])
    cli = build_cli(["--config", str(config), f"--output_dir={tmp_path}"], run=False)
    assert isinstance(cli.model, MultiAgentAlgorithm)
    assert cli.model.env_spec == cli.datamodule.env_spec
    assert Path(cli.trainer.default_root_dir).parent == tmp_path / config.stem
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)
