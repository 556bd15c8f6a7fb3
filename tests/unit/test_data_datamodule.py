"""OfflineDataModule: histories, splits, sampler resumption, missing datasets, bounds."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lightning_mbmarl.data.hdf5_format import DatasetError, OfflineDataset, write_dataset
from lightning_mbmarl.data.offline_datamodule import OfflineDataModule, history_rows, resolve_dataset
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.envs.icg import icg_spec

ENV = EnvConfig("icg", {"episode_length": 10})
SPEC = icg_spec(10)


def tiny_dataset() -> OfflineDataset:
    """Two episodes (rows 0-2 and 3-4); every entry of row ``t``'s observations is ``t + 1``."""
    t = 5
    states = np.arange(25, dtype=np.float32).reshape(t, 5)
    next_states = states + 1
    next_states[3, 2] = -7.0
    return OfflineDataset(
        observations=np.repeat(np.arange(1, t + 1, dtype=np.float32), 10).reshape(t, 2, 5),
        next_observations=np.zeros((t, 2, 5), np.float32),
        actions=np.array([[0, 1], [1, 0], [1, 1], [0, 0], [1, 0]]),
        rewards=np.array([0.0, 1.0, -2.0, 0.5, 3.0], np.float32),
        terminals=np.zeros(t, bool),
        timeouts=np.array([False, False, True, False, True]),
        states=states,
        next_states=next_states,
        available_actions=np.ones((t, 2, 2), bool),
        next_available_actions=np.ones((t, 2, 2), bool),
        metadata={
            "env_spec": SPEC.to_dict(),
            "env_config": {"name": "icg", "kwargs": {"episode_length": 10}},
            "produced_by": "hand-written test episodes",
            "format_version": 1,
        },
    )


@pytest.fixture
def tiny_path(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny.hdf5", tiny_dataset())


@pytest.fixture(scope="module")
def icg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("icg") / "icg.hdf5"
    OfflineDataModule(ENV, str(path), make_if_missing={"kind": "icg", "policy": "neutral", "episodes": 50}).setup("fit")
    return path


# Source rows of each transition's two-step history in tiny_dataset (-1: padding before the episode start).
TINY_HISTORY = [[-1, -1], [-1, 0], [0, 1], [-1, -1], [-1, 3]]


def test_history_rows_by_hand() -> None:
    assert history_rows(tiny_dataset(), 2).tolist() == TINY_HISTORY
    assert history_rows(tiny_dataset(), 4).tolist() == [
        [-1, -1, -1, -1],
        [-1, -1, -1, 0],
        [-1, -1, 0, 1],
        [-1, -1, -1, -1],
        [-1, -1, -1, 3],
    ]
    assert history_rows(tiny_dataset(), 0).shape == (5, 0)


def _check_histories(batch: dict[str, torch.Tensor]) -> None:
    """Each row's history matches TINY_HISTORY: real steps carry that row's obs and one-hot actions."""
    actions = tiny_dataset().actions
    for b in range(batch["obs"].shape[0]):
        row = int(batch["obs"][b, 0, 0]) - 1
        for h, source in enumerate(TINY_HISTORY[row]):
            assert bool(batch["history_mask"][b, h]) == (source >= 0)
            expected_obs = torch.full((2, 5), float(source + 1)) if source >= 0 else torch.zeros(2, 5)
            torch.testing.assert_close(batch["history_obs"][b, :, h], expected_obs)
            expected_action = torch.zeros(2, 2)
            if source >= 0:
                expected_action[[0, 1], actions[source]] = 1.0
            torch.testing.assert_close(batch["history_action"][b, :, h], expected_action)


def test_histories_in_batches(tiny_path: Path) -> None:
    dm = OfflineDataModule(ENV, str(tiny_path), batch_size=8, history_length=2, held_out_fraction=0.4)
    dm.setup("fit")
    _check_histories(dm.held_out_batch())
    _check_histories(next(iter(dm.train_dataloader())))
    starts = dm.sample_start_states(64, torch.Generator().manual_seed(0))
    assert set(starts) == {"state", "obs", "avail", "history_obs", "history_action", "history_mask"}
    assert starts["history_obs"].shape == (64, 2, 2, 5)
    assert sorted(set(starts["obs"][:, 0, 0].int().tolist())) == [1, 2, 3, 4, 5]
    _check_histories(starts)
    resets = dm.sample_start_states(64, torch.Generator().manual_seed(0), episode_starts=True)
    assert sorted(set(resets["obs"][:, 0, 0].int().tolist())) == [1, 4]  # rows 0 and 3 begin the two episodes
    assert not resets["history_mask"].any()
    _check_histories(resets)


def test_batch_keys_shapes_and_train_rows(icg_path: Path) -> None:
    dm = OfflineDataModule(ENV, str(icg_path), batch_size=32, history_length=3)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    shapes = {
        "state": (32, 5),
        "obs": (32, 2, 5),
        "action": (32, 2),
        "action_features": (32, 2, 2),
        "avail": (32, 2, 2),
        "reward": (32,),
        "terminal": (32,),
        "timeout": (32,),
        "next_state": (32, 5),
        "next_obs": (32, 2, 5),
        "next_avail": (32, 2, 2),
        "history_obs": (32, 2, 3, 5),
        "history_action": (32, 2, 3, 2),
        "history_mask": (32, 3),
    }
    assert {key: tuple(value.shape) for key, value in batch.items()} == shapes
    assert batch["action"].dtype == torch.int64 and batch["avail"].dtype == torch.bool
    assert batch["history_mask"].dtype == torch.bool and batch["timeout"].dtype == torch.float32
    torch.testing.assert_close(batch["action_features"].argmax(-1), batch["action"])
    assert len(dm.held_out_batch()["reward"]) == len(dm.held_out_indices) == 50


def test_split_disjoint_and_reproducible(icg_path: Path) -> None:
    def split(seed: int) -> tuple[set[int], set[int]]:
        dm = OfflineDataModule(ENV, str(icg_path), held_out_fraction=0.2, seed=seed)
        dm.setup("fit")
        return set(dm.train_indices.tolist()), set(dm.held_out_indices.tolist())

    train, val = split(0)
    assert not train & val and train | val == set(range(500)) and len(val) == 100
    assert split(0) == (train, val)
    assert split(1) != (train, val)


def test_train_batches_come_from_train_split(tiny_path: Path) -> None:
    dm = OfflineDataModule(ENV, str(tiny_path), batch_size=50, history_length=2, held_out_fraction=0.4)
    dm.setup("fit")
    rows = set((next(iter(dm.train_dataloader()))["obs"][:, 0, 0].int() - 1).tolist())
    assert rows == set(dm.train_indices.tolist())


@pytest.mark.parametrize("load_before_setup", [False, True])
def test_sampler_state_resumes_the_stream(icg_path: Path, load_before_setup: bool) -> None:
    first = OfflineDataModule(ENV, str(icg_path), batch_size=16, seed=3)
    first.setup("fit")
    stream = iter(first.train_dataloader())
    for _ in range(3):
        next(stream)
    saved = first.state_dict()
    expected = [next(stream) for _ in range(2)]

    resumed = OfflineDataModule(ENV, str(icg_path), batch_size=16, seed=3)
    if load_before_setup:
        resumed.load_state_dict(saved)
    resumed.setup("fit")
    if not load_before_setup:
        resumed.load_state_dict(saved)
    stream = iter(resumed.train_dataloader())
    for batch in expected:
        got = next(stream)
        for key in batch:
            torch.testing.assert_close(got[key], batch[key])
    restarted = OfflineDataModule(ENV, str(icg_path), batch_size=16, seed=3)
    restarted.setup("fit")
    assert not torch.equal(next(iter(restarted.train_dataloader()))["state"], expected[0]["state"])


def test_missing_dataset_with_recipe_is_created(tmp_path: Path) -> None:
    path = tmp_path / "made" / "icg_unfavorable.hdf5"
    recipe = {"kind": "icg", "policy": "unfavorable", "episodes": 20, "seed": 0}
    dm = OfflineDataModule(EnvConfig("icg", {"episode_length": 5}), str(path), make_if_missing=recipe, batch_size=4)
    assert not path.exists()  # nothing happens before setup
    dm.setup("fit")
    assert path.exists()
    assert len(dm.train_indices) + len(dm.held_out_indices) == 100  # 20 episodes of the env's 5 steps


def test_missing_dataset_without_recipe_names_the_command(tmp_path: Path) -> None:
    path = tmp_path / "absent.hdf5"
    dm = OfflineDataModule(ENV, str(path))
    assert dm.env_spec == SPEC  # available without the file
    with pytest.raises(DatasetError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert str(path) in message
    assert (
        f"python -m lightning_mbmarl dataset make icg --policy {{favorable,neutral,unfavorable}} --out {path}"
        in message
    )


def test_bad_recipe(tmp_path: Path) -> None:
    dm = OfflineDataModule(ENV, str(tmp_path / "x.hdf5"), make_if_missing={"kind": "icg", "policy": "neutral", "n": 3})
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['n'\]"):
        dm.setup("fit")


def test_bounds_by_hand(tiny_path: Path) -> None:
    dm = OfflineDataModule(ENV, str(tiny_path))
    dm.setup("fit")
    bounds = dm.bounds()
    torch.testing.assert_close(bounds["state_low"], torch.tensor([0.0, 1.0, -7.0, 3.0, 4.0]))
    torch.testing.assert_close(bounds["state_high"], torch.tensor([21.0, 22.0, 23.0, 24.0, 25.0]))
    assert float(bounds["reward_low"]) == -2.0 and float(bounds["reward_high"]) == 3.0


class _Probe(pl.LightningModule):
    """Fits a linear reward predictor on the batches; counts validation calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(5, 1)
        self.validation_calls = 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.net(batch["state"]).squeeze(-1), batch["reward"])

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.validation_calls += 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_runs_under_a_trainer(tmp_path: Path) -> None:
    dm = OfflineDataModule(
        ENV,
        str(tmp_path / "d.hdf5"),
        make_if_missing={"kind": "icg", "policy": "favorable", "episodes": 10},
        batch_size=8,
    )
    probe = _Probe()
    trainer = pl.Trainer(
        max_steps=4,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(probe, datamodule=dm)
    assert trainer.global_step == 4 and probe.validation_calls >= 2
    assert "train_sampler" in dm.state_dict()


def test_a_dataset_name_picks_its_file_and_recipe() -> None:
    recipe = {"kind": "icg", "policy": "neutral"}
    datasets = {"a": {"path": "a.hdf5", "make_if_missing": recipe}, "b": {"path": "b.hdf5"}}
    assert resolve_dataset(None, None, "a", datasets) == ("a.hdf5", recipe)
    assert resolve_dataset(None, None, "b", datasets) == ("b.hdf5", None)
    assert resolve_dataset("c.hdf5", recipe, None, datasets) == ("c.hdf5", recipe)
    with pytest.raises(ValueError, match=r"unknown dataset 'medium'; this config names \['a', 'b'\]"):
        resolve_dataset(None, None, "medium", datasets)
    with pytest.raises(ValueError, match="leave dataset_path and make_if_missing unset"):
        resolve_dataset("c.hdf5", None, "a", datasets)
    with pytest.raises(ValueError, match="give dataset_path"):
        resolve_dataset(None, None, None, datasets)
    with pytest.raises(ValueError, match="an entry has a path"):
        resolve_dataset(None, None, "x", {"x": {"file": "x.hdf5"}})
