"""``python -m lightning_mbmarl render``: a GIF of one greedy episode of a trained run, drawn by the environment
where it draws itself (MPE) and as a chart elsewhere (the ICG)."""

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def frames_of(path):
    with Image.open(path) as gif:
        return gif.n_frames, gif.size


def test_render_draws_an_icg_episode_as_charts(tmp_path, cli):
    made = cli(
        "fit",
        "--config",
        "conf/moma_icg_unfavorable.yaml",
        "--model.init_args.moma.world_model_steps=20",
        "--model.init_args.moma.policy_iterations=1",
        "--model.init_args.moma.rollout_starts=16",
        f"--data.init_args.dataset_path={tmp_path / 'icg.hdf5'}",
        f"--output_dir={tmp_path / 'outputs'}",
    )
    assert made.returncode == 0, made.stderr[-3000:]
    checkpoint = tmp_path / "outputs" / "moma_icg_unfavorable" / "version_0" / "checkpoints" / "last.ckpt"
    result = cli("render", f"--ckpt_path={checkpoint}", f"--out={tmp_path / 'icg.gif'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert frames_of(tmp_path / "icg.gif")[0] == 10  # one chart per step of the 10-step episode (each differs)


def test_render_draws_an_mpe_episode_with_its_own_renderer(tmp_path, cli):
    pytest.importorskip("mpe2", reason="MPE needs the mpe extra: pip install -e '.[mpe]'")
    made = cli(
        "fit",
        "--config",
        "conf/masac_mpe_spread.yaml",
        "--model.init_args.online.total_env_steps=600",
        "--model.init_args.online.warmup_env_steps=500",
        "--model.init_args.evaluation.final_episodes=2",
        f"--output_dir={tmp_path / 'outputs'}",
        "--trainer.enable_progress_bar=false",
    )
    assert made.returncode == 0, made.stderr[-3000:]
    checkpoint = tmp_path / "outputs" / "masac_mpe_spread" / "version_0" / "checkpoints" / "last.ckpt"
    result = cli("render", f"--ckpt_path={checkpoint}", f"--out={tmp_path / 'spread.gif'}")
    assert result.returncode == 0, result.stderr[-3000:]
    count, size = frames_of(tmp_path / "spread.gif")
    assert 20 <= count <= 25 and size == (700, 700)  # a frame per step (GIF merges identical ones); mpe2's drawing


def test_render_names_a_missing_run(tmp_path, cli):
    result = cli("render", f"--ckpt_path={tmp_path / 'nowhere' / 'checkpoints' / 'last.ckpt'}")
    assert result.returncode == 2 and "config.yaml" in result.stderr


def test_smax_draws_itself_with_jaxmarls_visualiser():
    pytest.importorskip("jaxmarl", reason="SMAX needs the smax extra: pip install -e '.[smax]'")
    import numpy as np

    from lightning_mbmarl.envs import EnvConfig, make_env

    env = make_env(EnvConfig("smax", {"map": "3m"}))
    assert env.render_options == {}
    _, _, avail = env.reset(seed=0)
    first = env.render()
    for _ in range(5):
        actions = np.array([np.flatnonzero(a)[-1] for a in avail])  # an attack where one is available, else a move
        _, _, avail, *_ = env.step(actions)
    later = env.render()
    assert first.shape == later.shape == (480, 480, 3) and first.dtype == np.uint8
    blue = (first[..., 2] > 150) & (first[..., 0] < 100) & (first[..., 1] < 100)
    green = (first[..., 1] > 100) & (first[..., 0] < 100) & (first[..., 2] < 100)
    assert blue.sum() > 50 and green.sum() > 50  # three marines a side, allies blue and enemies green
    assert not np.array_equal(first, later)  # the units moved
    env.close()
