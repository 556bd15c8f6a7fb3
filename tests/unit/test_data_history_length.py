"""Data modules serve histories of the length the model reads, and say so when configured otherwise."""

from types import SimpleNamespace

import pytest

from lightning_mbmarl.data.encoding import resolve_history_length


def _trainer(memory: int) -> SimpleNamespace:
    return SimpleNamespace(lightning_module=SimpleNamespace(history_length=memory))


def test_unset_history_length_follows_the_model():
    assert resolve_history_length(None, _trainer(10), "OfflineDataModule") == 10
    assert resolve_history_length(None, None, "OfflineDataModule") == 0


def test_mismatched_history_length_is_an_error_naming_both():
    with pytest.raises(ValueError, match=r"history_length=5 .* 10 steps"):
        resolve_history_length(5, _trainer(10), "OfflineDataModule")
    assert resolve_history_length(10, _trainer(10), "OfflineDataModule") == 10
