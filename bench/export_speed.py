"""Inference speed of models exported with `rnnkit.export.export_model`, run in onnxruntime,
against the same model run by rnnkit (its fused CPU engine), at several batch sizes.

Both candidates run the same padded batch with its lengths, in one process, in turns (one call
each per round, the order alternating; onnxruntime's threads do not spin between runs, as they
would slow the call after them), with the same number of threads; the table gives the
median milliseconds per call and the ratio onnxruntime / rnnkit (above 1: rnnkit is faster).
Each exported graph is checked against the model on the batch before timing.

    python bench/export_speed.py --batch 1 16 --steps 100 --rounds 30
    python bench/export_speed.py --precision     # float32 paths against float64, no timing
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import rnnkit as rk
from rnnkit.export import export_model
from rnnkit.models import LanguageModel, SequenceClassifier

__all__ = ["CASES", "measure", "main"]


def _lm(hidden: int) -> LanguageModel:
    return LanguageModel(96, 64, hidden, num_layers=2, cell="lstm", backend="rnnkit")


def _ln_classifier(hidden: int) -> SequenceClassifier:
    model = SequenceClassifier(5, vocab_size=96, input_size=64, hidden_size=hidden)
    model.rnn = rk.LayerNormLSTM(64, hidden)  # a variant: an ONNX Loop once exported
    return model


def _gru_classifier(hidden: int) -> SequenceClassifier:
    return SequenceClassifier(5, vocab_size=96, input_size=64, hidden_size=hidden, cell="gru",
                              bidirectional=True, pooling="mean")


#: name -> (builder(hidden), what the exported graph holds)
CASES: dict[str, tuple[Callable[[int], torch.nn.Module], str]] = {
    "lm-lstm-2x": (_lm, "ONNX LSTM"),
    "classify-bigru": (_gru_classifier, "ONNX GRU"),
    "classify-lnlstm": (_ln_classifier, "ONNX Loop"),
}


def _feeds(model: torch.nn.Module, T: int, B: int, hidden: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(T * 1000 + B)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    lengths[0] = T
    feeds = {"tokens": torch.randint(0, 96, (T, B), generator=g), "lengths": lengths}
    if isinstance(model, LanguageModel):
        feeds.update(h0=torch.zeros(2, B, hidden), c0=torch.zeros(2, B, hidden))
    return feeds


def _rnnkit_call(model: torch.nn.Module, feeds: dict[str, torch.Tensor]
                 ) -> Callable[[], torch.Tensor]:
    if isinstance(model, LanguageModel):
        def call() -> torch.Tensor:
            emb = model.embedding(feeds["tokens"])
            out, _ = model.rnn(emb, (feeds["h0"], feeds["c0"]), lengths=feeds["lengths"])
            return model.decoder(out)
    else:
        def call() -> torch.Tensor:
            return model(feeds["tokens"], feeds["lengths"])
    return call


def measure(name: str, hidden: int, T: int, B: int, rounds: int, threads: int,
            folder: Path) -> dict[str, float]:
    """Median ms per call of rnnkit and onnxruntime for one case and batch size."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = CASES[name][0](hidden).eval()
    (graph,) = export_model(model, folder / f"{name}.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # no spinning pool threads after a run: they would slow the rnnkit call that follows
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(graph.path), options,
                                   providers=["CPUExecutionProvider"])
    feeds = _feeds(model, T, B, hidden)
    np_feeds = {k: v.numpy() for k, v in feeds.items()}
    rk_call = _rnnkit_call(model, feeds)
    with torch.no_grad():
        want = rk_call()
        got = session.run(None, np_feeds)[0]
        error = float(np.abs(got - want.numpy()).max())
        times: dict[str, list[float]] = {"rnnkit": [], "onnxruntime": []}
        calls = {"rnnkit": rk_call, "onnxruntime": lambda: session.run(None, np_feeds)}
        for c in calls.values():  # warm up
            c()
        for r in range(rounds):
            order = ["rnnkit", "onnxruntime"] if r % 2 == 0 else ["onnxruntime", "rnnkit"]
            for who in order:
                start = time.perf_counter()
                calls[who]()
                times[who].append((time.perf_counter() - start) * 1e3)
    rk_ms = statistics.median(times["rnnkit"])
    ort_ms = statistics.median(times["onnxruntime"])
    return {"rnnkit_ms": rk_ms, "onnxruntime_ms": ort_ms, "ratio": ort_ms / rk_ms,
            "max_abs_diff": error}


def precision(name: str, hidden: int, T: int, B: int, folder: Path) -> dict[str, float]:
    """Max |difference| to the same model in float64 of onnxruntime, the fused engine and the
    reference path, on the timed batch (how much of the disagreement is float32 rounding)."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = CASES[name][0](hidden).eval()
    (graph,) = export_model(model, folder / f"{name}.onnx")
    feeds = _feeds(model, T, B, hidden)
    got = ort.InferenceSession(str(graph.path)).run(None, {k: v.numpy()
                                                           for k, v in feeds.items()})[0]
    with torch.no_grad():
        fused = _rnnkit_call(model, feeds)().numpy()
        for m in model.modules():
            if isinstance(m, rk.layers.base.RecurrentLayer):
                m.engine = "reference"
        ref = _rnnkit_call(model, feeds)().numpy()
        model.double()
        wide = {k: v.double() if v.is_floating_point() else v for k, v in feeds.items()}
        exact = _rnnkit_call(model, wide)().numpy()
    return {who: float(np.abs(v - exact).max())
            for who, v in (("onnxruntime", got), ("fused", fused), ("reference", ref))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    p.add_argument("--steps", type=int, default=100, help="T, time steps per sequence")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--precision", action="store_true",
                   help="instead of timing: each float32 path's distance to float64")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.precision:
        print("| model | B | max abs diff to float64: onnxruntime | fused | reference |")
        print("|---|---:|---:|---:|---:|")
        with tempfile.TemporaryDirectory() as d:
            for name in args.cases:
                for B in args.batch:
                    r = precision(name, args.hidden_size, args.steps, B, Path(d))
                    print(f"| {name} | {B} | {r['onnxruntime']:.1e} | {r['fused']:.1e} | "
                          f"{r['reference']:.1e} |", flush=True)
        return
    import onnxruntime as ort

    print(f"# {platform.processor() or platform.machine()}, {args.threads} threads, torch "
          f"{torch.__version__}, onnxruntime {ort.__version__}; H={args.hidden_size}, "
          f"T={args.steps}, lengths T/2..T, {args.rounds} rounds interleaved")
    print("| model | exported as | B | rnnkit ms | onnxruntime ms | ratio ort/rnnkit | "
          "max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for name in args.cases:
            for B in args.batch:
                r = measure(name, args.hidden_size, args.steps, B, args.rounds, args.threads,
                            Path(d))
                print(f"| {name} | {CASES[name][1]} | {B} | {r['rnnkit_ms']:.2f} | "
                      f"{r['onnxruntime_ms']:.2f} | {r['ratio']:.2f} | "
                      f"{r['max_abs_diff']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
