"""Generated-task benchmark: French (or any num2words language) numbers -> digits, or babel
dates in several locales -> ISO 8601. Writes train/valid/test TSVs with disjoint held-out
numbers or days, trains, then prints exact match on the test set (greedy and beam search).

    python bench/seq2seq_generated.py --task numbers --lang fr --out runs/numbers_fr
    python bench/seq2seq_generated.py --task dates --out runs/dates
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rnnkit.data.generated import (
    DEFAULT_LOCALES,
    date_pairs,
    number_pairs,
    split_days,
    split_numbers,
)
from rnnkit.data.pairs import read_pairs, write_pairs
from rnnkit.train.config import config_from_dict
from rnnkit.train.seq2seq import Seq2SeqConfig, evaluate_pairs, load_seq2seq, main

__all__ = ["run", "SETTINGS"]

# Word-level sources (short sequences), character-level targets (digits, ISO dates).
SETTINGS = dict(src_level="word", tgt_level="char", cell="gru", embedding_size=64,
                hidden_size=128, bidirectional=True, attention="general", batch_size=64,
                lr=3e-3, max_epochs=6, eval_every=1000, progress=False)


def make_data(task: str, folder: Path, count: int, seed: int, lang: str,
              locales: list[str]) -> dict[str, Path]:
    """Write train/valid/test TSVs (80/10/10 of `count` distinct numbers or days)."""
    if task == "numbers":
        parts = [number_pairs(p, lang) for p in split_numbers(count, 999_999, seed)]
    else:
        parts = [date_pairs(p, locales, seed + i)
                 for i, p in enumerate(split_days(count, seed))]
    return {name: write_pairs(pairs, folder / f"{name}.tsv")
            for name, pairs in zip(("train", "valid", "test"), parts, strict=True)}


def run(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("numbers", "dates"), default="numbers")
    p.add_argument("--lang", default="fr", help="num2words language of the numbers task")
    p.add_argument("--locales", default=",".join(DEFAULT_LOCALES), help="babel locales")
    p.add_argument("--count", type=int, default=50_000, help="distinct numbers / days drawn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--beams", default="1,5")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backend", choices=("auto", "rnnkit", "torch"), default="auto",
                   help="recurrent layers: rnnkit's engine (auto) or torch.nn's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a Seq2SeqConfig field")
    p.add_argument("--skip-train", action="store_true", help="only evaluate --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/{args.task}")
    files = make_data(args.task, out / "data", args.count, args.seed, args.lang,
                      args.locales.split(","))
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = config_from_dict(Seq2SeqConfig, {**SETTINGS, "train": str(files["train"]),
                                           "valid": str(files["valid"]), "out": str(out),
                                           "threads": args.threads, "backend": args.backend,
                                           **overrides})
    if not args.skip_train:
        main(cfg)
    model, src_vocab, tgt_vocab, meta = load_seq2seq(out)
    test = read_pairs(files["test"])
    rows = {}
    print(f"| {args.task} test ({len(test)} held-out pairs) | exact match | token acc | s |")
    print("|---|---|---|---|")
    for beam in (int(b) for b in args.beams.split(",")):
        t0 = time.perf_counter()
        scores, outputs = evaluate_pairs(model, src_vocab, tgt_vocab, test, beam=beam,
                                         max_len=meta["max_len"], batch_size=256)
        rows[beam] = scores
        print(f"| beam {beam} | {100 * scores['exact_match']:.2f}% | "
              f"{100 * scores['token_accuracy']:.2f}% | {time.perf_counter() - t0:.0f} |")
    wrong = [(s, t, o) for (s, t), o in zip(test, outputs, strict=True) if t != o][:5]
    for s, t, o in wrong:
        print(f"  wrong: {s!r} -> {o!r} (expected {t!r})")
    return rows


if __name__ == "__main__":
    run()
