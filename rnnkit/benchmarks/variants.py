"""`python -m rnnkit.benchmarks.variants`: the fused cell variants against the plain fused LSTM
and against rnnkit's own reference engine, interleaved in one process.

For each variant and shape (B, T, H) with I = H, times a training step (forward, then backward of
out.sum() w.r.t. the input and every parameter) of: the plain LSTM on the fused engine (the
baseline), the variant on the fused engine and the same layer on the reference engine. Calls are
timed in turns (baseline, fused, reference, baseline, ...) and each reports its median. Printed
ratios: fused variant / plain fused LSTM (target <= 1.6 at (16, 100, 128)) and reference /
fused variant (the speed-up; targets >= 3 at (16, 100, 128) and >= 8 at (1, 100, 128)).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import rnnkit as rk

__all__ = ["VARIANTS", "DEFAULT_SHAPES", "run_bench", "main"]

DEFAULT_SHAPES = [(16, 100, 128), (1, 100, 128)]
# name -> (layer class, constructor arguments, module state: "train" or "eval")
VARIANTS: dict[str, tuple[type, dict[str, Any], str]] = {
    "peephole LSTM": (rk.PeepholeLSTM, {}, "train"),
    "LayerNorm LSTM": (rk.LayerNormLSTM, {}, "train"),
    "LayerNorm GRU": (rk.LayerNormGRU, {}, "train"),
    "leaky RNN (learned rates)": (rk.LeakyRNN, {"rate": (0.01, 1.0), "learn_rate": True},
                                  "train"),
    "skip RNN (delays 1, 4)": (rk.SkipRNN, {"delays": (1, 4)}, "train"),
    "peephole LSTM + rec. dropout + zoneout": (
        rk.PeepholeLSTM, {"recurrent_dropout": 0.25, "zoneout": 0.1}, "train"),
    "LayerNorm GRU + rec. dropout + zoneout": (
        rk.LayerNormGRU, {"recurrent_dropout": 0.25, "zoneout": 0.1}, "train"),
    "LayerNorm LSTM, zoneout in eval": (rk.LayerNormLSTM, {"zoneout": 0.1}, "eval"),
}


def _step(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = layer(x)
        out.sum().backward()
    return run


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _interleave(fns: dict[str, Callable[[], None]], budget_s: float, min_reps: int,
                max_reps: int, clock: str = "wall") -> dict[str, float]:
    """Median seconds per call of each fn, timed in turns. clock="cpu" counts this process's
    CPU time only: on a shared machine it leaves out the time other processes hold the core
    (meaningful with one thread)."""
    tick = _CLOCKS[clock]

    def once(fn: Callable[[], None]) -> float:
        start = tick()
        fn()
        return tick() - start

    first = {name: once(fn) for name, fn in fns.items()}  # warm-up and a cost estimate
    reps = max(min_reps, min(max_reps, int(budget_s / max(sum(first.values()), 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(once(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def run_bench(shapes: list[tuple[int, int, int]], variants: list[str], budget_s: float = 3.0,
              min_reps: int = 5, max_reps: int = 200, clock: str = "wall"
              ) -> list[dict[str, Any]]:
    """One row per (variant, shape): medians in ms and the two ratios."""
    rows = []
    for B, T, H in shapes:
        x = torch.randn(T, B, H, requires_grad=True)
        base = rk.LSTM(H, H, engine="fused")
        for name in variants:
            cls, kwargs, mode = VARIANTS[name]
            fused = cls(H, H, engine="fused", **kwargs)
            ref = cls(H, H, engine="reference", **kwargs)
            ref.load_state_dict(fused.state_dict())
            for layer in (fused, ref):
                layer.train(mode == "train")
            t = _interleave({"base": _step(base, x), "fused": _step(fused, x),
                             "ref": _step(ref, x)}, budget_s, min_reps, max_reps, clock)
            rows.append({"variant": name, "B": B, "T": T, "H": H,
                         "lstm_ms": 1e3 * t["base"], "fused_ms": 1e3 * t["fused"],
                         "ref_ms": 1e3 * t["ref"], "vs_lstm": t["fused"] / t["base"],
                         "speedup": t["ref"] / t["fused"]})
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | (B, T, H) | plain fused LSTM ms | fused variant ms | reference ms "
             "| fused / LSTM | reference / fused |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | ({r['B']}, {r['T']}, {r['H']}) | {r['lstm_ms']:.2f} | "
                     f"{r['fused_ms']:.2f} | {r['ref_ms']:.2f} | {r['vs_lstm']:.2f}x | "
                     f"{r['speedup']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=[f"{b},{t},{h}"
                                                        for b, t, h in DEFAULT_SHAPES],
                        help="B,T,H triples (I = H)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--clock", choices=list(_CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (use with --threads 1)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    rows = run_bench(shapes, args.variants, budget_s=args.budget,  # type: ignore[arg-type]
                     clock=args.clock)
    from rnnkit.engine import load_extension

    ext = load_extension()
    print(f"device: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, kernels {ext.isa() if ext else 'unavailable'}, "
          f"{args.clock} clock; training step = forward + backward of out.sum(); "
          "medians of interleaved runs")
    print(_table(rows))


if __name__ == "__main__":
    main()
