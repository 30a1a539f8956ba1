"""`rnnkit bench` (`python -m rnnkit.benchmarks.engine`): fused engine vs torch.nn and ORT.

For each cell and shape (B, T, H) with I = H, times a training step (forward + backward of
out.sum() w.r.t. the weights) and inference (no_grad) for torch.nn and rnnkit's fused engine in
the same process, interleaved rep by rep, and reports medians, ratios (torch.nn time / rnnkit
time: above 1 means rnnkit is faster), GFLOP/s and the share of this machine's measured GEMM
peak. With onnxruntime installed, the torch.nn layer exported to ONNX runs as an inference column,
timed right after the other two in its own block (its spinning pool threads would otherwise slow
them down).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
from torch import nn

import rnnkit as rk
from rnnkit.engine import tuning

__all__ = ["DEFAULT_SHAPES", "run_bench", "gemm_peak", "add_arguments", "main"]

# (B, T, H): the issue-3 targets, then the per-call cost: a tiny layer call and single steps
DEFAULT_SHAPES = [(1, 100, 128), (16, 100, 128), (64, 100, 256), (64, 100, 512), (8, 1000, 64),
                  (2, 20, 32), (1, 1, 128), (8, 1, 128)]
_CELLS = {"lstm": (nn.LSTM, rk.LSTM, 4), "gru": (nn.GRU, rk.GRU, 3), "rnn": (nn.RNN, rk.RNN, 1)}


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _time(fn: Callable[[], Any]) -> float:
    start = _clock()
    fn()
    return _clock() - start


def gemm_peak(dtype: torch.dtype = torch.float32, n: int = 1024, reps: int = 15) -> float:
    """This machine's GEMM throughput in GFLOP/s: the fastest of `reps` n x n x n torch.mm
    (the best case, so that a busy moment does not lower the reference)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    return 2 * n**3 / min(_time(lambda: torch.mm(a, b)) for _ in range(reps)) / 1e9


def _flops(gates: int, B: int, T: int, H: int, train: bool) -> float:
    """GEMM flops of one layer: forward 2 T B G (I + H); the training step adds dh (per step),
    dW_ih and dW_hh (the input needs no gradient here), 2.5x the forward in all."""
    forward = 2.0 * T * B * gates * H * (H + H)
    return 2.5 * forward if train else forward


def _ort_session(layer: nn.Module, x: torch.Tensor, threads: int):
    """An onnxruntime session running `layer` (exported to ONNX), or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(layer, (x,), buf, dynamo=False, input_names=["x"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: session.run(None, feed)


def _interleave(fns: dict[str, Callable[[], Any]], budget_s: float, min_reps: int,
                max_reps: int) -> dict[str, float]:
    """Median seconds per call of each fn, timed in turns (a, b, c, a, b, c, ...). A call
    shorter than a millisecond (a one-step call) is timed in a block of calls that lasts about
    one, as a decoder makes them back to back: timed one by one, each would find its weights
    evicted by the other candidates' calls and mostly measure cache misses."""
    first = {name: _time(fn) for name, fn in fns.items()}  # warm-up, and a cost estimate
    calls = {name: max(1, min(1000, int(_BLOCK_S / max(t, 1e-9)))) for name, t in first.items()}
    reps = int(budget_s / max(sum(t * calls[n] for n, t in first.items()), 1e-9))
    reps = max(min_reps, min(max_reps, reps))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            n = calls[name]
            times[name].append(_time(fn) if n == 1 else _time(partial(_repeat, fn, n)) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}


_BLOCK_S = 1e-3  # shortest timed block of _interleave


def _repeat(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        fn()


def run_bench(cells: list[str], shapes: list[tuple[int, int, int]], threads: int | None = None,
              budget_s: float = 2.0, min_reps: int = 3, max_reps: int = 50,
              ort: bool = True, log: Callable[[str], None] = print,
              clock: str = "wall") -> dict[str, Any]:
    """Measure every (cell, shape, train/infer) and return the results as a JSON-ready dict.

    clock="cpu" times with this process's CPU time (all its threads) instead of wall time: on a
    machine shared with other work, it leaves out the time spent waiting for a core.
    """
    global _clock
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be one of {sorted(_CLOCKS)}, got {clock!r}")
    _clock = _CLOCKS[clock]
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    peak = gemm_peak()
    changed = _tuning_changes()
    info = {"torch": torch.__version__, "threads": threads, "cpu": platform.processor() or
            platform.machine(), "clock": clock, "gemm_peak_gflops": round(peak, 1),
            "tuning": {"source": tuning.source(), "changed": changed}, "rows": []}
    log(f"torch {torch.__version__}, {threads} threads, {clock} clock, "
        f"float32 GEMM peak {peak:.0f} GFLOP/s")
    log(f"tuning: {tuning.source()}" + (f", changed from the defaults: {changed}" if changed
                                         else ", the defaults"))
    log(f"{'cell':5} {'B':>3} {'T':>5} {'H':>4} {'step':6} {'torch.nn ms':>11} "
        f"{'rnnkit ms':>10} {'ratio':>6} {'ORT ms':>8} {'vs ORT':>6} {'GFLOP/s':>8} {'%peak':>6}")
    for cell in cells:
        nn_cls, rk_cls, gates = _CELLS[cell]
        for B, T, H in shapes:
            torch.manual_seed(0)
            ref = nn_cls(H, H)
            ours = rk_cls(H, H, engine="fused")
            ours.load_state_dict(ref.state_dict())
            x = torch.randn(T, B, H)
            for train in (True, False):
                fns = _step_fns(ref, ours, x, train)
                med = _interleave(fns, budget_s, min_reps, max_reps)
                session = None if train or not ort else _ort_session(ref, x, threads)
                if session is not None:
                    # Timed on its own, after the other two: ORT's pool threads spin after each
                    # run (its default, which helps its latency), and interleaved they would
                    # steal the cores from torch.nn and rnnkit (torch.nn inference lost ~30%).
                    med["ort"] = _interleave({"ort": session}, budget_s / 2, min_reps,
                                             max_reps)["ort"]
                    del session
                row = _row(cell, B, T, H, train, med, gates, peak)
                info["rows"].append(row)
                log(_format(row))
    return info


def _tuning_changes() -> dict[str, int]:
    """The thresholds in force that differ from the engine's defaults (rnnkit.engine.tuning)."""
    defaults = tuning.defaults()
    return {k: v for k, v in tuning.current().items() if defaults.get(k) != v}


def _step_fns(ref: nn.Module, ours: nn.Module, x: torch.Tensor,
              train: bool) -> dict[str, Callable[[], Any]]:
    if train:
        def make(layer: nn.Module) -> Callable[[], None]:
            def step() -> None:
                layer.zero_grad(set_to_none=True)
                layer(x)[0].sum().backward()
            return step
        return {"torch.nn": make(ref), "rnnkit": make(ours)}

    def infer(layer: nn.Module) -> Callable[[], Any]:
        def step() -> Any:
            with torch.no_grad():
                return layer(x)
        return step
    return {"torch.nn": infer(ref), "rnnkit": infer(ours)}


def _row(cell: str, B: int, T: int, H: int, train: bool, med: dict[str, float], gates: int,
         peak: float) -> dict[str, Any]:
    gflops = _flops(gates, B, T, H, train) / med["rnnkit"] / 1e9
    row = {"cell": cell, "B": B, "T": T, "H": H, "step": "train" if train else "infer",
           "torch_nn_ms": med["torch.nn"] * 1e3, "rnnkit_ms": med["rnnkit"] * 1e3,
           "ratio": med["torch.nn"] / med["rnnkit"], "gflops": gflops,
           "peak_share": gflops / peak}
    if "ort" in med:
        row["ort_ms"] = med["ort"] * 1e3
        row["ratio_vs_ort"] = med["ort"] / med["rnnkit"]
    return row


def _format(r: dict[str, Any]) -> str:
    ort = (f"{r['ort_ms']:8.3f} {r['ratio_vs_ort']:5.2f}x" if "ort_ms" in r
           else f"{'-':>8} {'-':>6}")
    return (f"{r['cell']:5} {r['B']:3d} {r['T']:5d} {r['H']:4d} {r['step']:6} "
            f"{r['torch_nn_ms']:11.3f} {r['rnnkit_ms']:10.3f} {r['ratio']:5.2f}x {ort} "
            f"{r['gflops']:8.1f} {100 * r['peak_share']:5.1f}%")


def _parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise argparse.ArgumentTypeError(
                f"--shapes expects BxTxH items separated by commas (e.g. 1x100x128), got {item!r}")
        shapes.append(tuple(int(p) for p in parts))
    return shapes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options (shared by `rnnkit bench`)."""
    parser.add_argument("--cells", default="lstm,gru,rnn",
                        help="comma-separated cells among lstm, gru, rnn (default: all)")
    parser.add_argument("--shapes", type=_parse_shapes, default=DEFAULT_SHAPES,
                        help="comma-separated BxTxH (I = H); default: the issue-3 shapes, "
                             "2x20x32 and two one-step calls (1x1x128, 8x1x128)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch (and ORT) threads; default: torch's default")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of timing per table cell (reps between 3 and 50)")
    parser.add_argument("--no-ort", action="store_true", help="skip the onnxruntime column")
    parser.add_argument("--clock", choices=sorted(_CLOCKS), default="wall",
                        help="wall time (default) or this process's CPU time, which leaves out "
                             "waiting for a core on a shared machine")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write results here")
    parser.add_argument("--busy-neighbour", action="store_true",
                        help="keep one core busy with another process (`yes > /dev/null`) while "
                             "timing: how the engine behaves on a machine shared with other work")


@contextlib.contextmanager
def _busy_neighbour(on: bool) -> Iterator[None]:
    """With `on`, another process keeps one core busy (it writes to /dev/null in a loop) for the
    duration of the block, and is stopped after it."""
    if not on:
        yield
        return
    neighbour = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    print(f"busy neighbour: `yes > /dev/null` running (pid {neighbour.pid})")
    try:
        yield
    finally:
        neighbour.kill()
        neighbour.wait()


def run_from_args(args: argparse.Namespace) -> int:
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in _CELLS]
    if unknown:
        raise SystemExit(f"--cells: unknown cell {unknown[0]!r}; expected some of {list(_CELLS)}")
    with _busy_neighbour(args.busy_neighbour):
        info = run_bench(cells, args.shapes, args.threads, args.budget, ort=not args.no_ort,
                         clock=args.clock)
    info["busy_neighbour"] = args.busy_neighbour
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(info, fh, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnkit.benchmarks.engine", description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
