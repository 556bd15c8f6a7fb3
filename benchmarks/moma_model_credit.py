"""What a trained MOMA-PPO world model credits: the model reward of short rollouts from dataset start states when the
team acts, when every joint gets zero torque, and under uniform random actions.

If zero torques earn about what the team earns, the model rewards the start states' momentum rather than the
team's actions, and the policy gradient has little to climb (docs/results/moma_ppo.md, Table 4b). ``--episode-starts`` starts from
the dataset's episode starts instead (the reset states the real team is evaluated from). Reads a run folder of
``python -m lightning_mbmarl fit --config conf/moma_<setting>.yaml``: its ``checkpoints/last.ckpt`` and the data
section of its ``config.yaml``.

    python benchmarks/moma_model_credit.py outputs/benchmarks/table4_ant/moma_ant_fo_expert_seed0/version_0
    python benchmarks/moma_model_credit.py RUN_DIR --episode-starts --horizon 50   # from the reset states

Prints one line per action source: mean model reward per step over the horizon (first and last step), mean
ensemble disagreement ε_g, and the share of rollouts the model has not ended.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from lightning_mbmarl.data.checkpoints import load_algorithm
from lightning_mbmarl.algorithms.moma_ppo import MOMAPPO
from lightning_mbmarl.data.encoding import encode_actions
from lightning_mbmarl.data.offline_datamodule import OfflineDataModule
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.learners.memory import push_history
from lightning_mbmarl.rollouts.ensemble_rollouts import HISTORY_KEYS

SOURCES = ("team", "team greedy", "zero torque", "uniform random")


def run_datamodule(run_dir: Path, algo: MOMAPPO) -> OfflineDataModule:
    """The run's offline data module, built from the data section of its saved ``config.yaml`` and set up."""
    init = dict(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["init_args"])
    init.update(env=EnvConfig(**init["env"]), history_length=algo.history_length)
    datamodule = OfflineDataModule(**init)
    datamodule.setup("fit")
    return datamodule


def actions_of(source: str, algo: MOMAPPO, obs, avail, history, generator: torch.Generator) -> torch.Tensor:
    """Joint actions [B, N, A] of one action source."""
    if source.startswith("team"):
        return algo.actor_critic.act(obs, avail, *history, greedy=source == "team greedy")[0]
    shape = (obs.shape[0], algo.env_spec.n_agents, algo.env_spec.action_dim)
    if source == "zero torque":
        return torch.zeros(shape)
    return torch.rand(shape, generator=generator) * 2 - 1


@torch.no_grad()
def model_credit(algo: MOMAPPO, start: dict[str, torch.Tensor], source: str, horizon: int, seed: int) -> dict:
    """Model reward per step [horizon], mean ε_g and the share alive at the end of ``horizon`` model steps."""
    generator = torch.Generator().manual_seed(seed)
    state, obs, avail = start["state"], start["obs"], start["avail"]
    history = [start[k] for k in HISTORY_KEYS]
    alive = torch.ones(state.shape[0], dtype=torch.bool)
    rewards, uncertainties = [], []
    for _ in range(horizon):
        features = encode_actions(actions_of(source, algo, obs, avail, history, generator), algo.env_spec)
        step = algo.model_env.step(state, features, generator=generator)
        rewards.append(step.reward[alive].mean())
        uncertainties.append(step.uncertainty[alive].mean())
        alive = alive & ~step.terminal
        history = list(push_history(*history, obs, features))
        state = step.next_state
        obs, avail = algo.observer.observe(state), algo.observer.available(state)
    return {
        "reward": torch.stack(rewards),
        "uncertainty": float(torch.stack(uncertainties).mean()),
        "alive": float(alive.float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a MOMA-PPO run folder (checkpoints/last.ckpt, config.yaml)")
    parser.add_argument("--starts", type=int, default=2000, help="dataset start states")
    parser.add_argument("--horizon", type=int, default=None, help="model steps (default: the run's rollout length)")
    parser.add_argument(
        "--episode-starts",
        action="store_true",
        help="start from the first states of the dataset's episodes (reset states), not any state",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    algo = load_algorithm(args.run_dir / "checkpoints" / "last.ckpt")
    if not isinstance(algo, MOMAPPO):
        raise SystemExit(f"{args.run_dir}: the checkpoint holds {type(algo).__name__}, not MOMAPPO")
    horizon = args.horizon or algo.moma.rollout_length
    start = run_datamodule(args.run_dir, algo).sample_start_states(
        args.starts, torch.Generator().manual_seed(args.seed), episode_starts=args.episode_starts
    )
    where = "episode-start" if args.episode_starts else "dataset"
    print(f"{args.run_dir}: {args.starts} {where} start states, {horizon} model steps")
    for source in SOURCES:
        credit = model_credit(algo, start, source, horizon, args.seed)
        reward = credit["reward"]
        print(
            f"  {source:15s} model reward/step {reward.mean():.2f} (step 1 {reward[0]:.2f}, step {horizon} "
            f"{reward[-1]:.2f}); ε_g {credit['uncertainty']:.2f}; not ended {credit['alive']:.2f}"
        )


if __name__ == "__main__":
    main()
