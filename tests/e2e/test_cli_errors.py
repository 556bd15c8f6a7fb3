"""Bad input gets one clear error naming what is wrong, and leaves nothing half-written."""

from pathlib import Path

import h5py
import pytest

from lightning_mbmarl.data.dataset_tool import make_icg_dataset

REPO = Path(__file__).resolve().parents[2]


def test_unknown_config_key_is_named(cli, quiet_cli_args):
    result = cli(
        "fit", "--config", "conf/moma_icg_unfavorable.yaml", "--model.init_args.moma.rollout_lenght=5", *quiet_cli_args
    )
    assert result.returncode != 0
    assert "rollout_lenght" in result.stderr


def test_missing_dataset_without_recipe_names_path_and_command(tmp_path: Path, cli, quiet_cli_args):
    missing = tmp_path / "nowhere" / "icg.hdf5"
    result = cli(
        "fit",
        "--config",
        "conf/ibc_icg_neutral.yaml",
        f"--data.init_args.dataset_path={missing}",
        "--data.init_args.make_if_missing=null",
        *quiet_cli_args,
    )
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "python -m lightning_mbmarl dataset make icg" in result.stderr
    assert not missing.exists()


def test_dataset_missing_a_key_is_named(tmp_path: Path, cli, quiet_cli_args):
    path = make_icg_dataset(tmp_path / "icg.hdf5", "neutral", episodes=20)  # in this process: `dataset make` is
    with h5py.File(path, "a") as f:  # run as a command by the test below
        del f["rewards"]
    result = cli(
        "fit", "--config", "conf/ibc_icg_neutral.yaml", f"--data.init_args.dataset_path={path}", *quiet_cli_args
    )
    assert result.returncode != 0
    assert "rewards" in result.stderr and str(path) in result.stderr


def test_dataset_info_prints_size_and_score_distribution(tmp_path: Path, cli):
    path = tmp_path / "icg.hdf5"
    assert (
        cli("dataset", "make", "icg", "--policy", "favorable", "--out", str(path), "--episodes", "50").returncode == 0
    )
    info = cli("dataset", "info", str(path))
    assert info.returncode == 0, info.stderr
    assert "500" in info.stdout and "median" in info.stdout


def test_misspelled_key_gets_one_short_message_with_the_close_name(cli, quiet_cli_args):
    result = cli(
        "fit", "--config", "conf/moma_icg_unfavorable.yaml", "--model.init_args.moma.rolout_length=5", *quiet_cli_args
    )
    assert result.returncode == 2
    assert "did you mean --model.init_args.moma.rollout_length?" in result.stderr
    assert "Union subtypes" not in result.stderr and "Traceback" not in result.stderr


def test_constructor_error_is_one_short_message_and_verbose_shows_the_report(cli, quiet_cli_args):
    options = ["fit", "--config", "conf/moma_icg_unfavorable.yaml", "--data.init_args.env.name=icgg", *quiet_cli_args]
    result = cli(*options)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "unknown environment 'icgg'" in error[0] and "'icg'" in error[0]
    assert "Traceback" not in result.stderr and "Union subtypes" not in result.stderr
    verbose = cli(*options, "--verbose")
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_top_level_help_lists_the_commands_without_heavy_imports():
    import subprocess
    import sys

    probe = (
        "import runpy, sys; sys.argv = ['lightning_mbmarl', '--help']\n"
        "try:\n    runpy.run_module('lightning_mbmarl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('IMPORTED' if {'torch', 'lightning', 'jax'} & set(sys.modules) else 'LIGHT')"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    for command in ("fit", "validate", "test", "dataset"):
        assert f"\n  {command} " in done.stdout
    assert "python -m lightning_mbmarl" in done.stdout and done.stdout.strip().endswith("LIGHT")


def test_a_method_on_actions_it_does_not_learn_fails_at_start_naming_both(cli, quiet_cli_args):
    """ITD3+BC declares continuous actions only (its capabilities: deterministic actors); the ICG has discrete ones."""
    result = cli(
        "fit",
        "--config",
        "conf/itd3bc_reacher_independent.yaml",
        "--data.init_args.env.name=icg",
        "--data.init_args.env.kwargs={}",
        *quiet_cli_args,
    )
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "ITD3BC learns continuous actions only" in error[0], result.stderr[-2000:]
    assert "'icg' has discrete actions" in error[0] and "Traceback" not in result.stderr


def test_an_online_method_on_an_offline_data_module_fails_at_start_naming_the_right_one(tmp_path, cli, quiet_cli_args):
    offline = tmp_path / "offline_icg.yaml"
    offline.write_text(
        "class_path: lightning_mbmarl.data.offline_datamodule.OfflineDataModule\n"
        "init_args:\n  env: {name: icg, kwargs: {episode_length: 10}}\n"
        f"  dataset_path: {tmp_path / 'icg.hdf5'}\n  make_if_missing: {{kind: icg, policy: neutral, episodes: 20}}\n"
    )
    result = cli("fit", "--config", "conf/mappo_icg.yaml", f"--data={offline}", *quiet_cli_args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "MAPPO learns from online data: use data.class_path " in result.stderr, result.stderr[-2000:]
    assert "lightning_mbmarl.data.online_datamodule.OnlineDataModule, not OfflineDataModule" in result.stderr


def test_a_reused_argument_checker_judges_each_command_line_on_its_own(monkeypatch):
    """Sweeps parse every point's command with one parser: a command's class, keys and errors must not carry over
    to the next (a MAMBA-only key is wrong after MAMBA parsed, once the command names MAPPO)."""
    from lightning_mbmarl.cli import ArgumentChecker

    monkeypatch.chdir(REPO)
    check = ArgumentChecker()
    check(["fit", "--config", "conf/mamba_icg.yaml", "--model.init_args.mamba.model_updates=3"])
    with pytest.raises(ValueError, match="mamba"):
        check(["fit", "--config", "conf/mappo_icg.yaml", "--model.init_args.mamba.model_updates=3"])
    with pytest.raises(ValueError, match="model_updates is not valid for MAMBA"):
        check(["fit", "--config", "conf/mamba_icg.yaml", "--model.init_args.mamba.model_updates=many"])
    check(["fit", "--config", "conf/mappo_icg.yaml"])
    check(["fit", "--config", "conf/mamba_icg.yaml", "--model.init_args.mamba.model_updates=3"])


@pytest.mark.parametrize(
    "option, message",
    [
        (
            "--model.init_args.no_such_key=1",
            "unknown option --model.init_args.no_such_key (MAMBA has no 'no_such_key')",
        ),
        ("--model.init_args.mapo.epochs=1", "did you mean --model.init_args.mappo?"),
        ("--data.init_args.buffer_capacty=9", "did you mean --data.init_args.buffer_capacity?"),
        (
            "--model.init_args.mamba.model_updates=many",
            "--model.init_args.mamba.model_updates is not valid for MAMBA: Expected a <class 'int'>. Got value: many",
        ),
        ("--model.init_args.mappo=3", "--model.init_args.mappo is not valid for MAMBA: Unable to load config '3'"),
        ("--model=MAGX", "did you mean --model=lightning_mbmarl.algorithms.mag.MAG"),  # MAG itself loads once imported
        (
            "--model=lightning_mbmarl.algorithms.mamba.MAMBX",
            "did you mean --model=lightning_mbmarl.algorithms.mamba.MAMBA",
        ),
        ("--data=OfflineDataModul", "did you mean --data=lightning_mbmarl.data.offline_datamodule.OfflineDataModule"),
        ("--trainer.precision=bf17", "--trainer.precision=bf17: expected int or one of 'transformer-engine',"),
        ("--trainer.max_steps=many", "--trainer.max_steps: Expected a <class 'int'>. Got value: many"),
    ],
)
def test_a_wrong_option_or_class_is_named_in_one_line(monkeypatch, option, message):
    """Unknown keys directly under ``init_args``, values of the wrong type and classes that do not load are named
    with what would be right (the parser's own report's first line says only "Problem with given class_path ...",
    "Parser key ..." or "Does not validate against any of the Union subtypes")."""
    from lightning_mbmarl.cli import ArgumentChecker

    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError) as error:
        ArgumentChecker()(["fit", "--config", "conf/mamba_icg.yaml", option])
    assert message in str(error.value), str(error.value)
    assert "\n" not in str(error.value) and "Problem with given class_path" not in str(error.value)
    assert "Parser key" not in str(error.value) and "Union subtypes" not in str(error.value)


def test_trainer_settings_lightning_refuses_are_one_short_message_and_leave_no_run_folder(
    tmp_path, cli, quiet_cli_args
):
    result = cli("fit", "--config", "conf/mamba_icg.yaml", "--trainer.accelerator=gpux", *quiet_cli_args)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "--trainer: You selected an invalid accelerator name" in error[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "outputs").glob("*/version_*")), "a failed start left a run folder"


def test_fit_without_a_config_says_where_the_configs_are(monkeypatch):
    from lightning_mbmarl.cli import ArgumentChecker

    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match=r"no --model: name an experiment's config, --config conf/<experiment>.yaml"):
        ArgumentChecker()(["fit"])


def test_a_part_given_as_the_experiment_config_says_where_it_goes(monkeypatch, capsys):
    """A data module's file as ``--config``: before, "Subcommand 'fit' does not accept option 'init_args.env...'"."""
    from lightning_mbmarl.cli import main

    monkeypatch.chdir(REPO)
    part = "conf/data/smax_3m_replay.yaml"
    assert main(["fit", "--config", part]) == 2
    error = capsys.readouterr().err
    assert f"--config {part} holds one class's settings" in error and error.count("\n") == 1
    assert f"--data={part}" in error and "`data: data/smax_3m_replay.yaml`" in error
