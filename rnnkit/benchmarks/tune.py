"""`rnnkit tune`: measure the engine's thresholds on this machine and store them, so every later
process runs with them (rnnkit.engine.tuning applies the saved file when the engine loads).

The thresholds that decide how a step loop uses the cores (thread teams, row splits, the
pipelined backward, oneDNN, the direction kernels' team, the rows up to which a decoder's
one-step call multiplies in the weights' own layout) are searched one at a time: each
candidate value runs a fixed set of layer calls (training and inference, the shapes where the
choice matters, a word language model's LSTM among them), the candidates timed in turns, and
the value with the lowest geometric mean time wins if it beats the current one by more than the
noise margin (5%). The winners are then timed against the defaults once more, and kept only if
they still beat them by the margin.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import rnnkit as rk
from rnnkit.engine import tuning

__all__ = ["CANDIDATES", "WORKLOAD", "tune", "add_arguments", "run_from_args"]

#: threshold -> the values tried (the default is always among them)
CANDIDATES: dict[str, list[int]] = {
    "team_batch": [0, 2, 8, 16],
    "team_macs": [1 << 12, 1 << 14, 1 << 16, 1 << 18],
    "team_large_macs": [0, 1 << 22, 1 << 24, 1 << 26, 1 << 28],
    "split_rows": [0, 2, 4, 8],
    "pipeline_rows": [0, 128, 256, 512],
    "own_grad_macs": [0, 1 << 24],
    "onednn": [0, 1],
    "few_step_rows": [0, 8, 32, 64],
    "few_step_onednn_macs": [0, 1 << 20, 1 << 22, 1 << 24],
    "direction_team_batch": [0, 16],
    "direction_team_macs": [1 << 14, 1 << 16, 1 << 18],
}

#: (name, layer class, layer options, (B, T, H), training?) : the calls whose time decides
WORKLOAD: list[tuple[str, type, dict[str, Any], tuple[int, int, int], bool]] = [
    ("lstm B=1", rk.LSTM, {}, (1, 50, 128), True),
    ("gru B=1 infer", rk.GRU, {}, (1, 50, 128), False),
    ("lstm B=16", rk.LSTM, {}, (16, 50, 128), True),
    ("gru B=16 infer", rk.GRU, {}, (16, 50, 128), False),
    ("rnn B=8", rk.RNN, {}, (8, 200, 64), True),
    ("lstm B=64", rk.LSTM, {}, (64, 20, 256), True),
    ("word-LM lstm", rk.LSTM, {"num_layers": 2}, (20, 35, 200), True),
    ("ln-lstm B=16", rk.LayerNormLSTM, {}, (16, 30, 128), True),
    ("decoder lstm step B=16", rk.LSTM, {}, (16, 1, 128), False),
    ("decoder gru step B=8", rk.GRU, {}, (8, 1, 256), False),
    ("beam gru step B=320", rk.GRU, {}, (320, 1, 128), False),
]


def _call(cls: type, options: dict[str, Any], shape: tuple[int, int, int],
          train: bool) -> Callable[[], None]:
    B, T, H = shape
    torch.manual_seed(0)
    layer = cls(H, H, engine="fused", **options)
    x = torch.randn(T, B, H)

    def run() -> None:
        if train:
            layer.zero_grad(set_to_none=True)
            layer(x)[0].sum().backward()
        else:
            with torch.no_grad():
                layer(x)
    return run


def _measure(candidates: list[dict[str, int]], calls: list[Callable[[], None]],
             reps: int) -> list[list[float]]:
    """Median seconds of every call under every candidate tuning, candidates in turns."""
    times = [[[] for _ in calls] for _ in candidates]
    for _ in range(reps):
        for c, values in enumerate(candidates):
            with tuning.overridden(**values):
                for k, call in enumerate(calls):
                    start = time.perf_counter()
                    call()
                    times[c][k].append(time.perf_counter() - start)
    return [[statistics.median(t) for t in per_call] for per_call in times]


def _geomean_ratio(times: list[float], base: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(t / b) for t, b in zip(times, base, strict=True)))


def tune(reps: int = 5, margin: float = 0.05, log: Callable[[str], None] = print,
         workload: list | None = None) -> dict[str, Any]:
    """Search the thresholds of `CANDIDATES` one at a time on `WORKLOAD`; returns the tuned
    values (only those that differ from the defaults), the defaults, and per-call times."""
    workload = WORKLOAD if workload is None else workload
    defaults = tuning.defaults()
    calls = [_call(cls, opts, shape, train) for _, cls, opts, shape, train in workload]
    for call in calls:  # warm-up: buffers, packed weights, the first OpenMP region
        call()
    best = dict(defaults)
    base = _measure([best], calls, reps)[0]
    log(f"{'threshold':22} {'default':>10} {'tuned':>10}  geometric-mean time vs before")
    for name, values in CANDIDATES.items():
        options = sorted(set(values) | {best[name]})
        trial = [{**best, name: v} for v in options]
        measured = _measure(trial, calls, reps)
        current = measured[options.index(best[name])]
        scores = [_geomean_ratio(m, current) for m in measured]
        pick = min(range(len(options)), key=scores.__getitem__)
        if scores[pick] < 1 - margin:
            best[name] = options[pick]
        log(f"{name:22} {defaults[name]:>10} {best[name]:>10}  "
            + " ".join(f"{v}:{s:.3f}" for v, s in zip(options, scores, strict=True)))
    tuned_times = _measure([defaults, best], calls, reps)
    rows = [{"call": n, "default_ms": d * 1e3, "tuned_ms": t * 1e3}
            for (n, *_), d, t in zip(workload, tuned_times[0], tuned_times[1], strict=True)]
    overall = _geomean_ratio(tuned_times[1], tuned_times[0])
    changed = {k: v for k, v in best.items() if v != defaults[k]}
    if changed and overall >= 1 - margin:  # the search's gains did not survive a re-measure
        log(f"the tuned thresholds ran {overall:.3f}x the defaults' time when measured again: "
            "within the noise, so the defaults are kept")
        changed = {}
    return {"thresholds": changed, "defaults": defaults, "calls": rows,
            "overall": overall, "first_pass_ms": [b * 1e3 for b in base]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=5,
                        help="timed repetitions of every call per candidate (default 5)")
    parser.add_argument("--dry-run", action="store_true",
                        help="measure and print, but do not save the tuning")
    parser.add_argument("--reset", action="store_true",
                        help="delete this machine's saved tuning and exit")


def run_from_args(args: argparse.Namespace) -> int:
    path = tuning.saved_path()
    if args.reset:
        existed = path.exists()
        path.unlink(missing_ok=True)
        print(f"rnnkit tune: {'removed' if existed else 'no saved tuning at'} {path}")
        return 0
    if args.reps < 1:
        raise ValueError(f"--reps must be at least 1, got {args.reps}")
    machine = tuning.machine()
    print(f"rnnkit tune: {machine['model']} ({machine['cores']} cores, {machine['isa']}), "
          f"{torch.get_num_threads()} threads")
    start = time.perf_counter()
    with tuning.overridden(**tuning.defaults()):  # search from the defaults, not a saved tuning
        result = tune(reps=args.reps)
    width = max(len(row["call"]) for row in result["calls"])
    print(f"\n{'call':{width}} {'default ms':>11} {'tuned ms':>9} {'speed-up':>9}")
    for row in result["calls"]:
        print(f"{row['call']:{width}} {row['default_ms']:11.2f} {row['tuned_ms']:9.2f} "
              f"{row['default_ms'] / row['tuned_ms']:8.2f}x")
    print(f"measured in {time.perf_counter() - start:.0f} s")
    if args.dry_run:
        print("rnnkit tune: --dry-run, nothing saved")
        return 0
    tuning.save(result["thresholds"], result["calls"])
    tuning.apply_saved()
    print(f"rnnkit tune: saved {result['thresholds'] or 'the defaults'} to {path}")
    return 0
