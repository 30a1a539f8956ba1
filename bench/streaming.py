"""Per-step latency of a stream fed one step at a time: rnnkit's `layer.step` against torch.nn's
layer called on one step and onnxruntime running torch.nn's layer exported with its state as
graph inputs. Every candidate carries its state from step to step; the three are timed in turns
(a block of steps each, interleaved) in one process, and the table gives median microseconds
per step and the ratios to rnnkit.

    python bench/streaming.py --hidden-size 128 --batch 1 16 --steps 200 --rounds 15
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

import rnnkit as rk

__all__ = ["measure", "main"]

KINDS = {"LSTM": (rk.LSTM, nn.LSTM), "GRU": (rk.GRU, nn.GRU), "RNN": (rk.RNN, nn.RNN)}


def _ort_stepper(layer: nn.Module, x: torch.Tensor, state: tuple[torch.Tensor, ...],
                 threads: int) -> Callable[[], None] | None:
    """One onnxruntime step per call, its state fed back; None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    names = ["h0", "c0"][:len(state)]

    class _Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x, *s):
            out, final = self.layer(x, tuple(s) if len(s) > 1 else s[0])
            return (out, *final) if isinstance(final, tuple) else (out, final)

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Step(), (x, *state), buf, dynamo=False,
                          input_names=["x", *names], output_names=["y", *[n + "_n" for n in names]])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy(), **{n: t.numpy() for n, t in zip(names, state, strict=True)}}

    def step() -> None:
        outputs = session.run(None, feed)
        for n, value in zip(names, outputs[1:], strict=True):
            feed[n] = value

    return step


def _stepper(layer: nn.Module, x_t: torch.Tensor, rnnkit: bool) -> Callable[[], None]:
    state = None

    def step() -> None:
        nonlocal state
        if rnnkit:
            _, state = layer.step(x_t, state)
        else:
            _, state = layer(x_t.unsqueeze(0), state)

    return step


def measure(kind: str, hidden: int, batch: int, steps: int, rounds: int,
            threads: int) -> dict[str, float]:
    """Median microseconds per step of each candidate (blocks of `steps`, interleaved)."""
    rk_cls, nn_cls = KINDS[kind]
    torch.manual_seed(0)
    theirs = nn_cls(hidden, hidden).eval()
    ours = rk_cls(hidden, hidden).eval()
    ours.load_state_dict(theirs.state_dict())
    x_t = torch.randn(batch, hidden)
    zeros = tuple(torch.zeros(1, batch, hidden) for _ in range(2 if kind == "LSTM" else 1))
    fns = {"rnnkit": _stepper(ours, x_t, True), "torch.nn": _stepper(theirs, x_t, False)}
    ort_step = _ort_stepper(theirs, x_t.unsqueeze(0), zeros, threads)
    if ort_step is not None:
        fns["onnxruntime"] = ort_step
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.no_grad():
        for fn in fns.values():  # warm-up: engine load, allocator caches
            for _ in range(steps):
                fn()
        for r in range(rounds):
            order = list(fns) if r % 2 == 0 else list(reversed(fns))
            for name in order:
                t0 = time.perf_counter()
                for _ in range(steps):
                    fns[name]()
                times[name].append((time.perf_counter() - t0) / steps * 1e6)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--steps", type=int, default=200, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=15, help="timed blocks per candidate")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, H={args.hidden_size}; median us per step")
    print(f"{'cell':>5} {'B':>3} {'rnnkit':>8} {'torch.nn':>9} {'ORT':>8} "
          f"{'nn/rk':>6} {'ORT/rk':>7}")
    rows = []
    for kind in KINDS:
        for batch in args.batch:
            r = measure(kind, args.hidden_size, batch, args.steps, args.rounds, args.threads)
            ort_us = r.get("onnxruntime", float("nan"))
            print(f"{kind:>5} {batch:>3} {r['rnnkit']:8.1f} {r['torch.nn']:9.1f} {ort_us:8.1f} "
                  f"{r['torch.nn'] / r['rnnkit']:6.2f} {ort_us / r['rnnkit']:7.2f}")
            rows.append({"cell": kind, "batch": batch, **r})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"hidden_size": args.hidden_size, "threads": args.threads,
                       "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
