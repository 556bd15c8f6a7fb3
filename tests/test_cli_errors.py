"""Bad input gets one clear error naming what is wrong, and leaves nothing half-written."""

from pathlib import Path

import h5py


def test_unknown_config_key_is_named(cli, quiet_cli_args):
    result = cli("fit", "--config", "conf/moma_icg_unfavorable.yaml", "--model.init_args.moma.rollout_lenght=5",
                 *quiet_cli_args)
    assert result.returncode != 0
    assert "rollout_lenght" in result.stderr


def test_missing_dataset_without_recipe_names_path_and_command(tmp_path: Path, cli, quiet_cli_args):
    missing = tmp_path / "nowhere" / "icg.hdf5"
    result = cli("fit", "--config", "conf/ibc_icg_neutral.yaml", f"--data.init_args.dataset_path={missing}",
                 "--data.init_args.make_if_missing=null", *quiet_cli_args)
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "python -m lightning_mbmarl dataset make icg" in result.stderr
    assert not missing.exists()


def test_dataset_missing_a_key_is_named(tmp_path: Path, cli, quiet_cli_args):
    path = tmp_path / "icg.hdf5"
    made = cli("dataset", "make", "icg", "--policy", "neutral", "--out", str(path), "--episodes", "20")
    assert made.returncode == 0, made.stderr
    with h5py.File(path, "a") as f:
        del f["rewards"]
    result = cli("fit", "--config", "conf/ibc_icg_neutral.yaml", f"--data.init_args.dataset_path={path}",
                 *quiet_cli_args)
    assert result.returncode != 0
    assert "rewards" in result.stderr and str(path) in result.stderr


def test_dataset_info_prints_size_and_score_distribution(tmp_path: Path, cli):
    path = tmp_path / "icg.hdf5"
    assert cli("dataset", "make", "icg", "--policy", "favorable", "--out", str(path), "--episodes", "50").returncode == 0
    info = cli("dataset", "info", str(path))
    assert info.returncode == 0, info.stderr
    assert "500" in info.stdout and "median" in info.stdout
