"""Imagined transitions per second of MOMA-PPO's Ant world model, and that rate's share of this machine's float32
matmul peak measured in the same run.

The model: 5 members, each a transition network and a reward network of 4 hidden layers of 1024 units, over the
Ant 4x2 global state (27 numbers) and joint action (8 numbers), stepped through :class:`EnsembleModelEnv` (random
member per sample, uncertainty measures, bounding-box clipping) in float32 without gradients.

    python benchmarks/ensemble_throughput.py [--batch 4096] [--seconds 5] [--device cpu|cuda]

Prints, last: ``ensemble throughput: <N> transitions/s, <P>% of matmul peak``.
"""

from __future__ import annotations

import argparse
import time

import torch

from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble
from lightning_mbmarl.world_models.model_env import EnsembleModelEnv

STATE_DIM, AGENTS, ACTION_DIM = 27, 4, 2


def _timed(fn, seconds: float, device: torch.device) -> tuple[int, float]:
    """Call ``fn`` repeatedly for about ``seconds`` (after a warm-up); returns (calls, elapsed seconds)."""
    for _ in range(3):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return calls, time.perf_counter() - start


def matmul_peak(device: torch.device, seconds: float, size: int = 2048) -> float:
    """float32 FLOP/s of one large square matmul, the best this device does on dense float32 work."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    calls, elapsed = _timed(lambda: a @ b, seconds, device)
    return 2 * size**3 * calls / elapsed


def flops_per_transition(model: GaussianEnsemble) -> float:
    """Multiply-adds of every member's transition and reward networks for one sample, times 2."""
    layers = [m for m in model.modules() if hasattr(m, "weight") and m.weight.dim() == 3]
    return float(sum(2 * m.groups * m.in_features * m.out_features for m in layers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096, help="start states stepped together")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window of each measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    config = EnsembleConfig(members=5, elites=5, hidden=(1024, 1024, 1024, 1024))
    model = GaussianEnsemble(STATE_DIM, AGENTS * ACTION_DIM, config).to(device).eval()
    env = EnsembleModelEnv(
        model, torch.full((STATE_DIM,), -10.0), torch.full((STATE_DIM,), 10.0), -10.0, 10.0, threshold=2.0
    ).to(device)
    state = torch.randn(args.batch, STATE_DIM, device=device)
    actions = torch.rand(args.batch, AGENTS, ACTION_DIM, device=device) * 2 - 1

    peak = matmul_peak(device, args.seconds)
    with torch.no_grad():
        calls, elapsed = _timed(lambda: env.step(state, actions), args.seconds, device)
    rate = args.batch * calls / elapsed
    achieved = rate * flops_per_transition(model)
    print(f"device: {device}, threads: {torch.get_num_threads()}, batch: {args.batch}")
    print(f"matmul peak (float32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"model: {flops_per_transition(model) / 1e6:.1f} MFLOP per imagined transition")
    print(f"ensemble throughput: {rate:,.0f} transitions/s, {100 * achieved / peak:.0f}% of matmul peak")


if __name__ == "__main__":
    main()
