"""An experiment file extends another through a top-level ``config:`` key (MAG's files extend MAMBA's)."""

from pathlib import Path

import pytest

from lightning_mbmarl.cli import build_cli
from lightning_mbmarl.config_includes import expand_config_includes, include_chain

CONF = Path(__file__).resolve().parents[2] / "conf"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_each_included_file_comes_before_the_file_that_includes_it(tmp_path: Path):
    base = write(tmp_path / "base.yaml", "seed_everything: 1\n")
    middle = write(tmp_path / "middle.yaml", "config: base.yaml\n")
    top = write(tmp_path / "top.yaml", "config: middle.yaml\n")
    assert include_chain(top) == [base, middle, top]
    expanded = expand_config_includes(["fit", "--config", str(top), "--trainer.max_epochs=1"])
    assert expanded == [
        "fit",
        "--config",
        str(base),
        "--config",
        str(middle),
        "--config",
        str(top),
        "--trainer.max_epochs=1",
    ]
    assert expand_config_includes(expanded) == expanded  # DDP workers re-read the expanded command line
    assert expand_config_includes([f"--config={middle}"]) == ["--config", str(base), f"--config={middle}"]
    assert expand_config_includes(["--config", str(base)]) == ["--config", str(base)]


def test_bad_includes_are_named(tmp_path: Path):
    write(tmp_path / "a.yaml", "config: b.yaml\n")
    write(tmp_path / "b.yaml", "config: a.yaml\n")
    with pytest.raises(ValueError, match="circle"):
        include_chain(tmp_path / "a.yaml")
    listing = write(tmp_path / "list.yaml", "config: [a.yaml, b.yaml]\n")
    with pytest.raises(ValueError, match="one file to extend"):
        include_chain(listing)


def test_a_mag_config_is_mamba_s_plus_its_planning_block(tmp_path: Path, monkeypatch):
    """The class changes from MAMBA to MAG and every MAMBA option of the included file stays (jsonargparse alone
    would reset them to MAG's defaults)."""
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)
    monkeypatch.setattr("sys.argv", ["lightning_mbmarl"])
    mamba = build_cli(["--config", str(CONF / "mamba_icg.yaml"), f"--output_dir={tmp_path}"], run=False)
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)
    mag = build_cli(["--config", str(CONF / "mag_icg.yaml"), f"--output_dir={tmp_path}"], run=False)
    assert type(mag.model).__name__ == "MAG"
    mamba_options, mag_options = mamba.config.model.init_args, mag.config.model.init_args
    for section in ("online", "mamba", "world_model", "mappo", "critic", "evaluation"):
        assert mag_options[section] == mamba_options[section], section
    assert mag_options.planning.horizon == 3  # MAG's own block
    assert mag.config.data.init_args == mamba.config.data.init_args
    assert mag.config.trainer.callbacks == mamba.config.trainer.callbacks
    assert Path(mag.trainer.default_root_dir).parent == tmp_path / "mag_icg"  # the run is named after the MAG file
    monkeypatch.delenv("LIGHTNING_MBMARL_RUN_DIR", raising=False)
