"""``python -m lightning_mbmarl render --ckpt_path RUN/checkpoints/last.ckpt --out episode.gif``: a team playing.

Loads the run's method and environment from the run folder (``config.yaml`` beside ``checkpoints/``), plays one
greedy episode and writes its frames as a GIF. Environments that draw themselves do so (MPE through mpe2's pygame
renderer, MaMuJoCo through MuJoCo's off-screen renderer, EGL by default, SMAX through JaxMARL's visualiser); the
others (the ICG, Climb, SMACv2) are drawn as a chart of each step: every agent's action and the return so far. Where drawing is impossible on the
machine (no OpenGL for MuJoCo, say) the error says what failed and how to fall back (``--chart``).
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

PROG = "python -m lightning_mbmarl render"


def load_run(checkpoint: Path) -> tuple[Any, Any]:
    """The trained method of a run folder's checkpoint and the environment config it ran on."""
    import torch
    import yaml

    from lightning_mbmarl.envs import EnvConfig

    run = checkpoint.parent.parent
    config_file = run / "config.yaml"
    if not checkpoint.is_file() or not config_file.is_file():
        raise FileNotFoundError(
            f"{checkpoint}: expected a run's checkpoints/<name>.ckpt with the run's config.yaml in "
            f"{run} (what `python -m lightning_mbmarl fit` writes)"
        )
    config = yaml.safe_load(config_file.read_text())
    module, name = config["model"]["class_path"].rsplit(".", 1)
    method = getattr(importlib.import_module(module), name)
    model = method.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    torch.set_grad_enabled(False)
    env = config["data"]["init_args"]["env"]
    return model, EnvConfig(env["name"], dict(env.get("kwargs") or {}))


def play_episode(model: Any, env_config: Any, seed: int, chart: bool, max_steps: int) -> list[np.ndarray]:
    """Frames (RGB uint8 ``[H, W, 3]``) of one greedy episode: the environment's own, or charts."""

    from lightning_mbmarl.data.env_runner import EnvRunner
    from lightning_mbmarl.envs import EnvConfig, VectorMultiAgentEnv, make_env

    probe = make_env(env_config)
    native = not chart and probe.render_options is not None
    probe.close()
    if native:
        os.environ.setdefault("MUJOCO_GL", "egl")
        env_config = EnvConfig(env_config.name, {**env_config.kwargs, **probe.render_options})
    copy = make_env(env_config)
    runner = EnvRunner(VectorMultiAgentEnv([copy]), model.history_length, seed)
    frames, actions, returns, finished = [], [], [0.0], []
    try:
        if native:
            frames.append(_native_frame(copy, env_config))
        while not finished and len(actions) < max_steps:
            record, finished = runner.step(lambda obs, avail, history: model.act(obs, avail, history, greedy=True))
            actions.append(record.action[0].float().numpy())
            returns.append(returns[-1] + float(record.reward[0]))
            if native and not finished:
                frames.append(_native_frame(copy, env_config))
    finally:
        runner.env.close()
    if not native:
        frames = [
            _chart(env_config.name, model.env_spec, actions[: t + 1], returns[: t + 2]) for t in range(len(actions))
        ]
    return frames


def _native_frame(env: Any, env_config: Any) -> np.ndarray:
    try:
        return env.render()
    except Exception as error:  # noqa: BLE001 - a renderer's failure is reported with the way around it
        raise RuntimeError(
            f"{env_config.name} could not draw itself here ({type(error).__name__}: {error}); "
            "for MaMuJoCo try MUJOCO_GL=osmesa or MUJOCO_GL=glfw, or draw a chart with --chart"
        ) from error


def _chart(name: str, spec: Any, actions: list[np.ndarray], returns: list[float]) -> np.ndarray:
    """One step as a chart: each agent's action (bars) and the return so far (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3), dpi=80)
    current = actions[-1]
    values = current if current.ndim == 1 else current.mean(axis=-1)
    left.bar(range(spec.n_agents), values, color="tab:blue")
    left.set(
        xticks=range(spec.n_agents),
        xticklabels=spec.agent_names or range(spec.n_agents),
        ylabel="action" if current.ndim == 1 else "mean action",
        title=f"{name}: step {len(actions)}",
    )
    if current.ndim == 1:
        left.set_ylim(-0.5, spec.action_dim - 0.5)
    right.plot(range(len(returns)), returns, marker="o", color="tab:green")
    right.set(xlabel="step", ylabel="return so far", title=f"return {returns[-1]:.2f}")
    fig.tight_layout()
    fig.canvas.draw()
    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return frame


def write_gif(frames: list[np.ndarray], path: Path, fps: int) -> None:
    from PIL import Image

    if not frames:
        raise ValueError("the episode produced no frames")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def main(words: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[-1])
    parser.add_argument("--ckpt_path", type=Path, required=True, help="RUN/checkpoints/last.ckpt of a run folder")
    parser.add_argument("--out", type=Path, default=Path("episode.gif"), help="the GIF to write")
    parser.add_argument("--seed", type=int, default=0, help="environment seed of the episode")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--max_steps", type=int, default=1000, help="stop drawing after this many steps")
    parser.add_argument("--chart", action="store_true", help="draw charts even where the environment draws itself")
    args = parser.parse_args(words)
    try:
        model, env_config = load_run(args.ckpt_path)
        frames = play_episode(model, env_config, args.seed, args.chart, args.max_steps)
    except (FileNotFoundError, RuntimeError, ImportError) as error:
        parser.exit(2, f"{PROG}: error: {error}\n")
    write_gif(frames, args.out, args.fps)
    print(f"wrote {args.out}: {len(frames)} frames of one greedy {env_config.name} episode")
    return 0
