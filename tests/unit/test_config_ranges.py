"""Sizes, counts and learning rates out of range are named when the config is built, with the value given."""

from __future__ import annotations

import pytest

from lightning_mbmarl.algorithms.mamba import MAMBAConfig
from lightning_mbmarl.algorithms.online import OnlineConfig
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.world_models.bilevel_rssm import BiLevelConfig
from lightning_mbmarl.world_models.ensemble import EnsembleConfig
from lightning_mbmarl.world_models.rssm import RSSMConfig


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: RSSMConfig(hidden=-1), "RSSMConfig: hidden must be > 0, got -1"),
        (lambda: RSSMConfig(classes=0), "RSSMConfig: classes must be > 0, got 0"),
        (lambda: RSSMConfig(learning_rate=0.0), "RSSMConfig: learning_rate must be > 0, got 0.0"),
        (lambda: RSSMConfig(attention_layers=-1), "RSSMConfig: attention_layers must be >= 0, got -1"),
        (lambda: BiLevelConfig(deter=0), "BiLevelConfig: deter must be > 0, got 0"),
        (lambda: OnlineConfig(total_env_steps=0), "OnlineConfig: total_env_steps must be > 0, got 0"),
        (lambda: OnlineConfig(warmup_env_steps=-5), "OnlineConfig: warmup_env_steps must be >= 0, got -5"),
        (lambda: MAPPOConfig(hidden=(64, 0)), r"MAPPOConfig: every entry of hidden must be > 0, got \(64, 0\)"),
        (lambda: MAPPOConfig(minibatch_size=0), "MAPPOConfig: minibatch_size must be > 0, got 0"),
        (lambda: EnsembleConfig(members=3, elites=5), r"EnsembleConfig: elites \(5\) must be at most members \(3\)"),
        (
            lambda: MAMBAConfig(imagined_rewards="mean"),
            "MAMBAConfig: imagined_rewards must be 'team' or 'agent', got 'mean'",
        ),
    ],
)
def test_out_of_range_values_are_named_with_the_value(build, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        build()


def test_zero_where_zero_means_none_is_accepted():
    assert RSSMConfig(attention_layers=0, head_layers=0).attention_layers == 0
    assert OnlineConfig(warmup_env_steps=0).warmup_env_steps == 0
    assert MAPPOConfig(memory_length=0).memory_length == 0  # no memory module
