"""How the hot loops run: bf16 matmuls where the device multiplies bf16 natively, and optional ``torch.compile``.

The hot loops are the world-model updates (RSSM and Gaussian ensembles), imagination, MAG's look-ahead and the PPO
steps on imagined or model data. :class:`FastPathConfig` is one option of every method that has them
(``--model.init_args.fast.bf16 off`` gives the float32 reference path); :class:`FastPath` applies it:

* ``autocast()``: a bf16 autocast region around a hot loop's forward pass. Matmuls (linear, bmm, baddbmm, attention
  projections) run in bf16; every network's output layer runs in float32 (:class:`Float32OutputLinear`,
  :class:`~lightning_mbmarl.nn.batched.BatchedLinear` with ``float32_output``), and losses, KL terms, log-probabilities,
  returns and statistics are computed in float32 by the code that reads those outputs. Recurrent states stay float32
  (the GRU cell and layer norms run in float32 under CPU autocast).
* ``compile(name, fn)``: ``torch.compile`` of a whole loss function (forward and, through AOTAutograd, its backward)
  or of MAG's look-ahead step, with the configured mode; ``reduce-overhead`` adds CUDA-graph capture on a GPU.
  ``compile_loops`` limits it to some of the hot loops (:data:`HOT_LOOPS` names them), e.g. MAG's look-ahead step
  alone, which compiles in seconds, where the whole RSSM loss takes minutes.
* ``adam(params)``: the hot loops' Adam with its fused kernel (one kernel updates every parameter; the MOMA-PPO
  ensemble step on this CPU: 2 ms of 22 saved).

``bf16 = "auto"`` turns bf16 on only where it was measured to be a win: on CPUs with native bf16 dot products
(AVX512-BF16 or AMX-BF16; benchmarks/README.md: the MAMBA world-model update 1.3x faster at 8 replay windows and
1.6x at 40 on such a CPU, the ensemble step 1.5x; at the SMAX CPU protocol's half widths, 16 windows, the update is
bound by its operations' dispatch and bf16's casts make it about 13% slower, while imagination still gains 1.2x) and
not on CUDA, where the first H200 measurements found these updates bound by kernel launches, not arithmetic (bf16
autocast made the ensemble step slower: 7.6 ms against 6.5). ``compile = "none"`` is the default everywhere: on this
package's CPUs compiling the whole MAMBA update took 636 s for a 1.07x gain (at the protocol's sizes 0.86x in float32,
1.20x under bf16, paired with eager), and no GPU measurement of the capture path exists yet
(``benchmarks/gpu_check.sh`` makes it).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys
from dataclasses import dataclass
from typing import Callable, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
#: the functions a method's fast path compiles, by the name ``FastPath.compile`` is given
HOT_LOOPS = (
    "world_model_loss",  # MAMBA's RSSM loss; MOMA-PPO's ensemble loss
    "world_model_loss_and_sequence",  # MAG's RSSM loss, with the prior states R̂_m learns from
    "bilevel_world_model_loss",  # MABL's bi-level RSSM loss
    "dynamics_loss",  # AORPO's dynamics ensemble loss
    "ppo_loss",  # PPO minibatch loss on imagined or model data
    "planning_lookahead_step",  # one step of MAG's look-ahead (no gradients)
)
BF16_CHOICES = ("auto", "on", "off")

Fn = TypeVar("Fn", bound=Callable)


@dataclass
class FastPathConfig:
    """How a method's hot loops run (see the module docstring)."""

    bf16: Literal["auto", "on", "off"] = "auto"  # bf16 autocast of the hot loops' matmuls; auto: where measured faster
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"  # torch.compile mode of hot loops
    fused_adam: bool = True  # Adam's fused kernel for the world models' and policies' optimizers
    compile_loops: list[str] | None = None  # which of HOT_LOOPS `compile` applies to (None: all of them)

    def __post_init__(self) -> None:
        if self.bf16 not in BF16_CHOICES:
            raise ValueError(f"FastPathConfig: bf16 must be one of {list(BF16_CHOICES)}, got {self.bf16!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"FastPathConfig: compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")
        unknown = sorted(set(self.compile_loops or ()) - set(HOT_LOOPS))
        if unknown:
            raise ValueError(f"FastPathConfig: compile_loops {unknown} are not hot loops; they are {list(HOT_LOOPS)}")


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str) -> bool:
    """Whether ``bf16 = "auto"`` turns bf16 on for this device type (see the module docstring)."""
    if device_type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


class FastPath:
    """Applies a :class:`FastPathConfig` to the hot loops of one module (see the module docstring)."""

    def __init__(self, config: FastPathConfig) -> None:
        self.config = config
        self._compiled: dict[str, Callable] = {}

    def bf16_enabled(self, device: torch.device | str) -> bool:
        device_type = torch.device(device).type
        if self.config.bf16 == "auto":
            return native_bf16(device_type)
        return self.config.bf16 == "on"

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """A bf16 autocast region on ``device`` when bf16 is enabled there, else a region that changes nothing (an
        autocast the caller is already in, e.g. the trainer's ``bf16-mixed``, stays in force)."""
        device_type = torch.device(device).type
        if not self.bf16_enabled(device_type):
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    def adam(self, params, precision: str | None = None, **options) -> torch.optim.Adam:
        """``torch.optim.Adam(params, **options)``, fused unless ``fused_adam`` is off or the trainer's ``precision``
        is a mixed one (Lightning's mixed-precision plugin refuses to clip the gradients of fused optimizers)."""
        fused = self.config.fused_adam and "mixed" not in str(precision or "")
        return torch.optim.Adam(params, fused=fused or None, **options)

    def compile(self, name: str, fn: Fn) -> Fn:
        """``fn`` compiled with the configured mode (once per ``name``: the package's loops use the names of
        :data:`HOT_LOOPS`), or ``fn`` itself with ``compile = "none"`` or where ``compile_loops`` leaves ``name`` out."""
        loops = self.config.compile_loops
        if self.config.compile == "none" or (loops is not None and name not in loops):
            return fn
        if name not in self._compiled:
            self._compiled[name] = torch.compile(fn, mode=self.config.compile)
        return self._compiled[name]  # type: ignore[return-value]


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Have glibc's allocator keep freed memory for reuse instead of returning large blocks to the system.

    By default glibc serves every allocation above 128 KiB with a fresh ``mmap`` and unmaps it when freed, so each
    large temporary tensor (MAG's look-ahead makes several of 13 MB per step) is paid again in page faults. Raising
    the mmap and trim thresholds keeps such blocks in the heap (the effect PyTorch's CPU tuning guide gets from
    jemalloc or tcmalloc): measured here, MAG's imagination took 9.4 s instead of 10.8 s on an idle machine and 9.3 s
    instead of 27.5 s beside other jobs. Process-wide; called once by the command line. Returns whether it applied
    (glibc on Linux only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 31))


class Float32OutputLinear(nn.Linear):
    """An ``nn.Linear`` that runs in its weights' precision (float32 unless converted) even inside an autocast
    region: the output layer of a network, so predictions, logits and values keep their float32 resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.linear(x.to(self.weight.dtype), self.weight, self.bias)
