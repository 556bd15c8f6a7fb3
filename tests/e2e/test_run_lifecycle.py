"""A run's life through the command line: a signal saves last.ckpt within seconds (also inside a MAMBA iteration)
and exits non-zero; resuming continues in the run's own folder and metrics.csv exactly where it stopped; a finished
run resumed does not train; a failed start leaves no folder; --trainer.default_root_dir is the run folder."""

from __future__ import annotations

import csv
import os
import signal
import time

import pytest
import torch

pytestmark = pytest.mark.slow

# conf/mamba_icg.yaml at tiny sizes: 400 warm-up steps, then an iteration per 100 environment steps, an evaluation
# (and last.ckpt) every 2 iterations; each iteration has 20 world-model updates, so a stop lands inside one.
TINY_MAMBA = [
    "--model.init_args.online.total_env_steps=2000",
    "--model.init_args.mamba.sequence_length=4",
    "--model.init_args.mamba.model_updates=20",
    "--model.init_args.mamba.policy_rounds=2",
    "--model.init_args.mamba.imagination_horizon=3",
    "--model.init_args.world_model.hidden=16",
    "--model.init_args.world_model.embed=16",
    "--model.init_args.world_model.deter=16",
    "--model.init_args.world_model.categoricals=4",
    "--model.init_args.world_model.classes=4",
    "--model.init_args.world_model.attention_feedforward=16",
    "--model.init_args.mappo.hidden=[16,16]",
    "--model.init_args.mappo.epochs=1",
    "--model.init_args.evaluation.episodes=2",
    "--model.init_args.evaluation.final_episodes=2",
    "--trainer.val_check_interval=2",
]


def test_sigterm_saves_last_checkpoint_and_resume_continues_in_the_same_folder(
    tmp_path, cli, started_cli, quiet_cli_args
):
    options = ["fit", "--config", "conf/mamba_icg.yaml", *TINY_MAMBA, *quiet_cli_args]
    run = tmp_path / "outputs" / "mamba_icg" / "version_0"
    checkpoint = run / "checkpoints" / "last.ckpt"
    process = started_cli(*options)
    deadline = time.time() + 300
    while not (run / "metrics.csv").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # metrics are written at the first evaluation: the run is iterating
    assert process.poll() is None, process.communicate()[1][-3000:]
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert time.time() - sent < 30  # within one world-model update or policy round, not a whole iteration
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM received" in stderr and "last.ckpt" in stderr
    stopped = torch.load(checkpoint, weights_only=True)["mbmarl_counters"]
    assert stopped["env_steps"] < 2000

    resumed = cli(*options, f"--ckpt_path={checkpoint}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (tmp_path / "outputs" / "mamba_icg" / "version_1").exists()  # the run's own folder
    assert (run / "config.yaml").exists() and (run / "config_resume_1.yaml").exists()
    final = torch.load(checkpoint, weights_only=True)["mbmarl_counters"]
    assert final["env_steps"] == 2000 and final["updates"] == (2000 - 400) // 100
    assert final["world_model_steps"] == 20 * final["updates"]  # no world-model step lost or repeated
    assert final["iteration_model_updates"] == final["iteration_policy_rounds"] == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    updates = [float(r["counters/updates"]) for r in rows if r.get("counters/updates")]
    assert updates[0] <= stopped["updates"] < updates[-1] == final["updates"]  # both parts in one metrics.csv


def test_a_finished_run_resumed_does_not_train(tmp_path, cli, quiet_cli_args):
    options = [
        "fit",
        "--config",
        "conf/moma_icg_neutral.yaml",
        "--model.init_args.moma.world_model_steps=20",
        "--model.init_args.moma.policy_iterations=1",
        "--model.init_args.moma.rollout_starts=16",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        *quiet_cli_args,
    ]
    assert cli(*options).returncode == 0
    checkpoint = tmp_path / "outputs" / "moma_icg_neutral" / "version_0" / "checkpoints" / "last.ckpt"
    before = torch.load(checkpoint, weights_only=True)
    again = cli(*options, f"--ckpt_path={checkpoint}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already complete" in again.stderr + again.stdout
    after = torch.load(checkpoint, weights_only=True)
    assert after["global_step"] == before["global_step"]
    assert after["mbmarl_counters"]["policy_updates"] == before["mbmarl_counters"]["policy_updates"]


def test_a_failed_start_leaves_no_run_folder(tmp_path, cli, quiet_cli_args):
    result = cli("fit", "--config", "conf/moma_icg_neutral.yaml", "--data.init_args.env.name=icgg", *quiet_cli_args)
    assert result.returncode != 0
    assert not (tmp_path / "outputs" / "moma_icg_neutral").exists()


def test_default_root_dir_is_the_run_folder(tmp_path, cli, quiet_cli_args):
    folder = tmp_path / "my_run"
    options = [
        "fit",
        "--config",
        "conf/moma_icg_neutral.yaml",
        "--model.init_args.moma.world_model_steps=10",
        "--model.init_args.moma.policy_iterations=1",
        "--model.init_args.moma.rollout_starts=16",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        f"--trainer.default_root_dir={folder}",
        *quiet_cli_args,
    ]
    result = cli(*options)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "metrics.csv").exists() and (folder / "checkpoints" / "last.ckpt").exists()
    assert "exists and is not empty" not in result.stderr  # no spurious log-folder warning
    again = cli(*options)  # a second fresh run into the same folder would mix two runs
    assert again.returncode == 2 and "--output_dir" in again.stderr and "Traceback" not in again.stderr
    assert (folder / "checkpoints" / "last.ckpt").exists()  # the first run is left as it was


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_a_checkpoint_path_with_no_file_is_one_short_message_and_leaves_no_folder(
    tmp_path, cli, quiet_cli_args, command
):
    missing = tmp_path / "run" / "checkpoints" / "last.ckpt"
    result = cli(command, "--config", "conf/mamba_icg.yaml", f"--ckpt_path={missing}", *quiet_cli_args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--ckpt_path {missing}: no such file" in result.stderr
    assert not (tmp_path / "outputs" / "mamba_icg").exists() and not missing.parent.exists()


def test_a_killed_run_leaves_the_checkpoint_of_its_last_evaluation_and_progress_lines(
    tmp_path, started_cli, quiet_cli_args
):
    """Inside MOMA-PPO's world-model phase, with stdout to a pipe (a log file): progress lines over the real
    schedule, and a last.ckpt at every evaluation interval (Lightning's ModelCheckpoint with save_top_k=0 wrote none
    until the end), so even a SIGKILL loses at most one interval."""
    process = started_cli(
        "fit",
        "--config",
        "conf/moma_icg_neutral.yaml",
        "--model.init_args.moma.world_model_steps=100000",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        *quiet_cli_args,
    )
    seen = []
    for line in process.stdout:  # the run's progress reports, one per evaluation interval here
        seen.append(line)
        if "world-model steps 500 / 100,000" in line:
            break
    process.kill()
    process.wait(timeout=60)
    assert any("moma_icg_neutral: world-model steps 250 / 100,000 (0%)" in line for line in seen), seen
    checkpoint = tmp_path / "outputs" / "moma_icg_neutral" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=True)["mbmarl_counters"]["world_model_steps"] >= 250


def test_slurm_requeue_signal_saves_requeues_and_the_requeued_job_resumes(tmp_path, started_cli, quiet_cli_args):
    """A SLURM batch job (its variables, and an ``scontrol`` that records its arguments): SIGUSR1 saves last.ckpt at
    the next step boundary and requeues the job; the requeued job, the same command line, resumes in the job's own
    folder and finishes the schedule."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    slurm = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "mbmarl",
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    options = ["fit", "--config", "conf/mamba_icg.yaml", *TINY_MAMBA, *quiet_cli_args]
    run = tmp_path / "outputs" / "mamba_icg" / "slurm_4242"
    process = started_cli(*options, env=slurm)
    deadline = time.time() + 300
    while not (run / "metrics.csv").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-3000:]
    process.send_signal(signal.SIGUSR1)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGUSR1, stderr[-3000:]
    assert "SIGUSR1 received" in stderr and "requeueing the SLURM job" in stderr
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["mbmarl_counters"]
    assert stopped["env_steps"] < 2000

    requeued = started_cli(*options, env={**slurm, "SLURM_RESTART_COUNT": "1"})
    _, stderr = requeued.communicate(timeout=600)
    assert requeued.returncode == 0, stderr[-3000:]
    assert "resuming from" in stderr
    assert sorted(p.name for p in run.parent.iterdir()) == ["slurm_4242"]
    assert (run / "config_resume_1.yaml").exists()
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["mbmarl_counters"]
    assert final["env_steps"] == 2000 and final["world_model_steps"] == 20 * final["updates"]
