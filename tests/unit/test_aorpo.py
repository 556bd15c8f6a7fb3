"""AORPO: opponent-wise rollouts compose joint actions from opponent models and real opponents as n_j says, count
every real-opponent query, opponent models refit on their own schedule, and the method converges to the Climb game's
Nash equilibrium end to end."""

from types import SimpleNamespace

import pytest
import torch

from lightning_mbmarl.algorithms.aorpo import AORPOConfig, OpponentWiseModelUsage
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.rollouts.opponent_wise_rollouts import opponent_wise_rollouts
from lightning_mbmarl.world_models.ego_ensembles import EgoEnsembles
from lightning_mbmarl.world_models.ensemble import EnsembleConfig
from lightning_mbmarl.world_models.opponent_models import OpponentModelConfig, OpponentModels


def _three_agent_spec():
    from lightning_mbmarl.envs.base import EnvSpec

    # 3 agents, each observing its own slice of a 6-dim state, 1-dim continuous actions
    return EnvSpec("toy3", 3, (2, 2, 2), 6, "continuous", (1, 1, 1), 10, obs_from_state=((0, 1), (2, 3), (4, 5)))


def _rollout(model_steps: torch.Tensor, horizon: int = 3):
    spec = _three_agent_spec()
    torch.manual_seed(0)
    opponents = OpponentModels(spec, OpponentModelConfig(hidden=(8,)))
    with torch.no_grad():  # every opponent model predicts -0.5 (tanh of the mean output), std tiny
        for p in opponents.net.parameters():
            p.zero_()
        opponents.net.output_layer.bias[..., 0] = torch.atanh(torch.tensor(-0.5))
        opponents.net.output_layer.bias[..., 1] = -20.0
    dynamics = EgoEnsembles(3, 6, 3, EnsembleConfig(members=2, elites=2, hidden=(8,), termination=False))
    real_policy = lambda obs, avail, features: torch.full((*obs.shape[:-1], 1), 0.75)  # noqa: E731
    return opponent_wise_rollouts(
        real_policy, opponents, dynamics, StateObserver(spec), spec, torch.zeros(4, 6), horizon, model_steps
    )


def test_joint_actions_follow_n_j_and_real_queries_are_counted():
    # ego 0 models agent 1 for 2 steps and agent 2 for 1 step; egos 1 and 2 always query the real opponents
    n = torch.tensor([[3, 2, 1], [0, 3, 0], [0, 0, 3]])
    result = _rollout(n)
    t = result.transitions
    assert result.model_steps == 3 * 3 * 4  # 3 egos x 3 steps x 4 start states, nothing terminal
    ego0 = t["ego"] == 0
    actions = t["action_features"][ego0].view(3, 4, 3)  # steps x starts x agents (1-dim actions)
    assert torch.allclose(actions[:, :, 0], torch.tensor(0.75))  # the ego always acts itself
    assert torch.allclose(actions[:2, :, 1], torch.tensor(-0.5), atol=0.05)  # model of agent 1 for p <= 2
    assert torch.allclose(actions[2, :, 1], torch.tensor(0.75))  # then the real agent 1
    assert torch.allclose(actions[:1, :, 2], torch.tensor(-0.5), atol=0.05) and torch.allclose(
        actions[1:, :, 2], torch.tensor(0.75)
    )
    # queries: ego 0 asks agent 1 once and agent 2 twice per start; egos 1 and 2 ask both opponents every step
    assert result.communications == 4 * (1 + 2) + 2 * 4 * (2 * 3)


def test_models_only_rollouts_never_query_real_opponents():
    assert _rollout(torch.full((3, 3), 3)).communications == 0


@pytest.mark.slow
def test_aorpo_converges_to_the_climb_nash_equilibrium(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli("fit", "--config", "conf/aorpo_climb.yaml", "--seed_everything=7", *quiet_cli_args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "aorpo_climb" / "version_0"
    assert read_metric(run, "eval/nash_distance") < 0.1
    assert read_metric(run, "eval/env_steps") >= 3000
    assert read_metric(run, "eval/agent_interactions") >= 2 * read_metric(run, "eval/env_steps")
    assert read_metric(run, "model_error/c_5") < 0.05  # the dynamics models are accurate along real trajectories
    # model fits and rollout rounds happen between logged steps; their latest values still reach the log
    assert read_metric(run, "aorpo/opponent_error") >= 0.0 and read_metric(run, "aorpo/rollout_length") >= 1
    assert (run / "plots" / "model_error.png").exists()


@pytest.mark.slow
def test_aorpo_two_process_ddp_on_cpu(tmp_path, cli, read_metric, quiet_cli_args):
    result = cli(
        "fit",
        "--config",
        "conf/aorpo_climb.yaml",
        "--model.init_args.online.total_env_steps=900",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        *quiet_cli_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "aorpo_climb" / "version_0"
    assert read_metric(run, "eval/env_steps") >= 900  # summed over both ranks' environments
    assert read_metric(run, "eval/nash_distance") >= 0.0


class _ScheduleProbe(OpponentWiseModelUsage):
    """OpponentWiseModelUsage.update with the fits, rollouts and policy step replaced by records of when they ran."""

    def __init__(self, aorpo: AORPOConfig):
        self.aorpo, self.env_spec, self.fits = aorpo, _three_agent_spec(), []
        self.counters = dict(env_steps=0, communications=0, last_model_fit=-1, last_opponent_fit=-1, last_rollout=0)

    def _fit_models(self, datamodule, dynamics, opponents):
        self.fits.append((datamodule.env_steps, dynamics, opponents))
        return {}

    def _generate_rollouts(self, datamodule):
        return {}

    def _policy_batch(self, datamodule):
        return {}

    def learn_from(self, batch):
        return {}


def _fit_schedule(aorpo: AORPOConfig, until: int = 1000, every: int = 50):
    probe = _ScheduleProbe(aorpo)
    for steps in range(0, until + 1, every):
        probe.update(SimpleNamespace(env_steps=steps))
    return probe.fits


def test_opponent_models_refit_on_their_own_interval():
    # Algorithm 1 trains the opponent models at every step of an epoch and the dynamics once per epoch: here every
    # 200 and every 500 environment steps, checked every 50 steps from step 0.
    fits = _fit_schedule(AORPOConfig(model_train_interval=500, opponent_train_interval=200))
    assert fits == [
        (0, True, True),
        (200, False, True),
        (400, False, True),
        (500, True, False),
        (600, False, True),
        (800, False, True),
        (1000, True, True),
    ]


def test_opponent_models_refit_with_the_dynamics_by_default():
    fits = _fit_schedule(AORPOConfig(model_train_interval=500))
    assert fits == [(0, True, True), (500, True, True), (1000, True, True)]
