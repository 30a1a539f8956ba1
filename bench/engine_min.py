"""The fused engine alone, timed the robust way for A/B comparisons between two checkouts:
the minimum of back-to-back calls over 1.5 s per shape, training (forward + backward) and
inference, printed as one JSON object of milliseconds. Run it in each checkout (each with its
own RNNKIT_CACHE), alternating, several times; compare the minima.

    RNNKIT_CACHE=/tmp/cache-a PYTHONPATH=/path/to/a python bench/engine_min.py > a1.json
"""

from __future__ import annotations

import json
import time

import torch

import rnnkit as rk

SHAPES = [("RNN", 8, 1000, 64), ("RNN", 1, 100, 128), ("GRU", 2, 20, 32), ("RNN", 2, 20, 32),
          ("GRU", 1, 100, 128), ("LSTM", 64, 100, 512), ("LSTM", 16, 100, 128)]


def _train(layer: torch.nn.Module, x: torch.Tensor):
    def step() -> None:
        out, _ = layer(x)
        out.sum().backward()
    return step


def _infer(layer: torch.nn.Module, x: torch.Tensor):
    def step() -> None:
        with torch.no_grad():
            layer(x)
    return step


def main(seconds: float = 1.5, threads: int = 2) -> dict[str, float]:
    torch.set_num_threads(threads)
    res = {}
    for cell, B, T, H in SHAPES:
        torch.manual_seed(0)
        layer = getattr(rk, cell)(H, H, engine="fused")
        x = torch.randn(T, B, H, requires_grad=True)
        for name, fn in (("train", _train(layer, x)), ("infer", _infer(layer, x))):
            for _ in range(3):
                fn()
            best, end = float("inf"), time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            res[f"{cell} {B}x{T}x{H} {name}"] = best * 1e3
    return res


if __name__ == "__main__":
    print(json.dumps(main()))
