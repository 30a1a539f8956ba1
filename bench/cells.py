"""One step of rk.RNNCell / LSTMCell / GRUCell on the fused engine (`engine="fused"`), on the
reference equations (`engine="reference"`) and torch.nn's cells:
inference and training (forward + backward of the step), the three interleaved round by
round, median microseconds per call and the ratios torch.nn / fused and reference / fused
(above 1: the fused step is faster). Never gates CI.

    python bench/cells.py                 # one thread
    python bench/cells.py --threads 2 --rounds 21
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import rnnkit as rk

SHAPES = [(1, 128), (3, 51), (8, 128), (8, 256), (32, 256)]
CELLS = {"LSTM": (rk.LSTMCell, nn.LSTMCell), "GRU": (rk.GRUCell, nn.GRUCell),
         "RNN": (rk.RNNCell, nn.RNNCell)}


def _call(cell: nn.Module, x: torch.Tensor, hx, train: bool) -> Callable[[], None]:
    if not train:
        def infer() -> None:
            with torch.no_grad():
                cell(x, hx)
        return infer

    def step() -> None:
        out = cell(x, hx)
        (sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()).backward()
    return step


def _time(fn: Callable[[], None], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def run(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--calls", type=int, default=200, help="calls per timing")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"threads {args.threads}; median us per call over {args.rounds} interleaved rounds")
    print("| cell | B | H | mode | fused (us) | reference (us) | torch.nn (us) | torch.nn / fused "
          "| reference / fused |\n|---|---|---|---|---|---|---|---|---|")
    for name, (ours_cls, theirs_cls) in CELLS.items():
        for B, H in SHAPES:
            torch.manual_seed(0)
            ours, ref = ours_cls(H, H, engine="fused"), ours_cls(H, H, engine="reference")
            theirs = theirs_cls(H, H)
            ref.load_state_dict(ours.state_dict())
            theirs.load_state_dict(ours.state_dict())
            x = torch.randn(B, H)
            h = torch.randn(B, H)
            hx = (h, h.clone()) if name == "LSTM" else h
            for train in (False, True):
                fns = [_call(c, x, hx, train) for c in (ours, ref, theirs)]
                for fn in fns:
                    _time(fn, args.calls // 4)  # warm-up
                times: list[list[float]] = [[], [], []]
                for r in range(args.rounds):
                    for i in ((0, 1, 2) if r % 2 == 0 else (2, 1, 0)):
                        times[i].append(_time(fns[i], args.calls))
                a, ref_us, b = (statistics.median(t) for t in times)
                mode = "train" if train else "infer"
                print(f"| {name} | {B} | {H} | {mode} | {a:.1f} | {ref_us:.1f} | {b:.1f} | "
                      f"{b / a:.2f}x | {ref_us / a:.2f}x |", flush=True)
                rows.append(dict(cell=name, B=B, H=H, mode=mode, fused_us=a,
                                 reference_us=ref_us, torch_us=b))
    return rows


if __name__ == "__main__":
    run()
