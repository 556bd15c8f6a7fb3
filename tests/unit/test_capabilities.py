"""Each method declares the action kinds and the data it learns from once (``capabilities``); building it for an
environment of another action kind fails at once with one error naming the method and the environment."""

from __future__ import annotations

import pytest

from lightning_mbmarl.algorithms.aorpo import AORDPG, AORPO
from lightning_mbmarl.algorithms.base import CapabilityError
from lightning_mbmarl.algorithms.ibc import IBC
from lightning_mbmarl.algorithms.itd3_bc import ITD3BC
from lightning_mbmarl.algorithms.mabl import MABL
from lightning_mbmarl.algorithms.maddpg import MADDPG
from lightning_mbmarl.algorithms.mag import MAG
from lightning_mbmarl.algorithms.maiql import MAIQL
from lightning_mbmarl.algorithms.mamba import MAMBA
from lightning_mbmarl.algorithms.mappo import MAPPO
from lightning_mbmarl.algorithms.masac import MASAC
from lightning_mbmarl.algorithms.moma_ppo import MOMAPPO
from lightning_mbmarl.envs.climb import climb_spec
from lightning_mbmarl.envs.icg import icg_spec

DECLARED = {  # method: (action kinds, data)
    MAMBA: (("discrete", "continuous"), "online"),
    MAG: (("discrete", "continuous"), "online"),
    MABL: (("discrete", "continuous"), "online"),
    MAPPO: (("discrete", "continuous"), "online"),
    MASAC: (("discrete", "continuous"), "online"),
    MADDPG: (("discrete", "continuous"), "online"),
    AORPO: (("discrete", "continuous"), "online"),
    AORDPG: (("discrete", "continuous"), "online"),
    MOMAPPO: (("discrete", "continuous"), "offline"),
    IBC: (("discrete", "continuous"), "offline"),
    MAIQL: (("discrete", "continuous"), "offline"),
    ITD3BC: (("continuous",), "offline"),
}


@pytest.mark.parametrize("method", list(DECLARED), ids=lambda m: m.__name__)
def test_declared_capabilities(method):
    assert (method.capabilities.action_kinds, method.capabilities.data) == DECLARED[method]


@pytest.mark.parametrize(
    "method", [m for m, (kinds, _) in DECLARED.items() if len(kinds) == 1], ids=lambda m: m.__name__
)
def test_a_method_built_for_the_other_action_kind_fails_naming_both(method):
    supported = method.capabilities.action_kinds[0]
    spec = climb_spec() if supported == "discrete" else icg_spec()
    with pytest.raises(
        CapabilityError,
        match=rf"{method.__name__} learns {supported} actions only; environment "
        rf"'{spec.name}' has {spec.action_kind} actions",
    ):
        method(env_spec=spec)
