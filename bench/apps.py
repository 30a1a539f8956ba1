"""Every application trained on rnnkit's engine and on torch.nn's layers: the same number of
steps, the same seed and data, the two backends interleaved round by round; then decoding
(sampling, greedy translation, beam 5) from one trained model on each backend. Prints a
markdown table of median rates and the ratio rnnkit / torch; never gates CI.

    python bench/apps.py                      # every application, 3 rounds
    python bench/apps.py --apps lm-demo,scan --rounds 5 --threads 2

Training rates are the Trainer's own tokens/s of the second half of each run (its first half
holds the warm-up: the first calls, allocator growth); one evaluation sits between the halves
and is not timed. Decoding rates are generated tokens per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKENDS = ("rnnkit", "torch")


def _apps() -> dict[str, tuple[Any, Any, dict[str, Any]]]:
    """name -> (training module, config class, settings); the presets the issue names."""
    from rnnkit.data.scan import scan_path
    from rnnkit.train import classify, lm, music, seq2seq

    scan = dict(seq2seq.PRESETS["scan"], train=str(scan_path(SHARED / "scan", "simple")),
                max_epochs=0)
    return {
        "lm-demo": (lm, lm.LMConfig, dict(lm.PRESETS["demo"], sample_length=0, eval_batches=2)),
        "lm-shakespeare": (lm, lm.LMConfig, dict(lm.PRESETS["shakespeare"], sample_length=0,
                                                 eval_batches=2, time_budget=0.0,
                                                 data=str(SHARED / "tinyshakespeare" /
                                                          "input.txt"))),
        "scan": (seq2seq, seq2seq.Seq2SeqConfig, dict(scan, eval_examples=16)),
        "scan-no-attention": (seq2seq, seq2seq.Seq2SeqConfig,
                              dict(scan, attention="none", eval_examples=16)),
        "classify-names": (classify, classify.ClassifyConfig, dict(baseline=False)),
        "music-jsb": (music, music.MusicConfig,
                      dict(data=str(SHARED / "polymusic" / "JSB_Chorales.mat"))),
    }


def train_rate(name: str, backend: str, steps: int, out: Path) -> float:
    """Tokens/s of the second half of `steps` training steps of application `name`."""
    module, cls, settings = _apps()[name]
    from rnnkit.train.config import config_from_dict

    half = max(1, steps // 2)
    cfg = config_from_dict(cls, {**settings, "backend": backend, "max_steps": 2 * half,
                                 "eval_every": half, "time_budget": 0.0, "progress": False,
                                 "warmup_steps": 0, "out": str(out), "seed": 1})
    module.main(cfg, log=lambda s: None)
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_s"] for r in rows if r.get("split") == "train"][-1]


def _decoders(name: str, run: Path, backend: str) -> dict[str, Callable[[], int]]:
    """Decoding jobs on the model trained in `run`, rebuilt on `backend`; each returns the
    number of tokens it generated."""
    from rnnkit.train import checkpoint as ckpt

    if name.startswith("lm"):
        from rnnkit.decoding.sampling import generate
        from rnnkit.train.lm import load_language_model

        model, _, _ = load_language_model(run, "last", backend=backend)
        prompt = torch.zeros(8, dtype=torch.long)

        def sample() -> int:
            torch.manual_seed(0)
            return len(generate(model, prompt, 200, temperature=0.8))
        return {"sample 200": sample}
    from rnnkit.data.pairs import read_pairs
    from rnnkit.data.scan import scan_path
    from rnnkit.models.seq2seq import Seq2Seq
    from rnnkit.train.seq2seq import translate

    where = ckpt.find_checkpoint(run, "last")
    meta = ckpt.load_checkpoint_meta(where)
    model = Seq2Seq(**{**meta["model_args"], "backend": backend})
    ckpt.load_model_weights(where, model)
    model.eval()
    src_vocab = ckpt_vocab(meta)
    sources = [s for s, _ in read_pairs(scan_path(SHARED / "scan", "simple", "test"))[:64]]

    def decode(beam: int) -> Callable[[], int]:
        def job() -> int:
            hyps = translate(model, src_vocab, sources, beam=beam, max_len=meta["max_len"])
            return sum(len(h[0].tokens) for h in hyps)
        return job
    return {"translate greedy": decode(1), "translate beam 5": decode(5)}


def ckpt_vocab(meta: dict) -> Any:
    from rnnkit.data.vocab import Vocabulary
    return Vocabulary.from_dict(meta["src_vocab"])


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--apps", default=",".join(_apps()), help="comma-separated applications")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per backend")
    p.add_argument("--steps", type=int, default=0,
                   help="training steps per run (0: each application's default below)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    default_steps = {"lm-shakespeare": 8, "music-jsb": 20}
    rows: list[dict[str, Any]] = []
    print("| application | what | rnnkit | torch.nn | ratio |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.apps.split(","):
            steps = args.steps or default_steps.get(name, 40)
            rates: dict[str, list[float]] = {b: [] for b in BACKENDS}
            for r in range(args.rounds):
                for b in (BACKENDS if r % 2 == 0 else BACKENDS[::-1]):
                    out = Path(tmp) / f"{name}-{b}-{r}"
                    rates[b].append(train_rate(name, b, steps, out))
            rows.append(_row(name, f"train {steps} steps (tok/s)", rates))
            if name.startswith(("lm", "scan")):
                run_dir = Path(tmp) / f"{name}-rnnkit-0"
                jobs = {b: _decoders(name, run_dir, b) for b in BACKENDS}
                for what in jobs["rnnkit"]:
                    speed: dict[str, list[float]] = {b: [] for b in BACKENDS}
                    for r in range(args.rounds):
                        for b in (BACKENDS if r % 2 == 0 else BACKENDS[::-1]):
                            t0 = time.perf_counter()
                            n = jobs[b][what]()
                            speed[b].append(n / (time.perf_counter() - t0))
                    rows.append(_row(name, f"{what} (tok/s)", speed))
    return rows


def _row(name: str, what: str, rates: dict[str, list[float]]) -> dict[str, Any]:
    ours, theirs = (statistics.median(rates[b]) for b in BACKENDS)
    print(f"| {name} | {what} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |",
          flush=True)
    return {"app": name, "what": what, "rnnkit": ours, "torch": theirs, "ratio": ours / theirs}


if __name__ == "__main__":
    run()
