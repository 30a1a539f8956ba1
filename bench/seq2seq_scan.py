"""SCAN benchmark: train a Seq2Seq on a SCAN split, then exact match on its test set (greedy
and beam search). Prints a table; never gates CI.

    python bench/seq2seq_scan.py --split simple --out runs/scan_simple
    python bench/seq2seq_scan.py --split length --preset scan_length --out runs/scan_length
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rnnkit.data.pairs import read_pairs
from rnnkit.data.scan import DEFAULT_SCAN_ROOT, scan_path
from rnnkit.train.config import config_from_dict
from rnnkit.train.seq2seq import PRESETS, Seq2SeqConfig, evaluate_pairs, load_seq2seq, main

__all__ = ["run"]


def run(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("simple", "length"), default="simple")
    p.add_argument("--preset", choices=sorted(PRESETS), default="scan",
                   help="Seq2SeqConfig settings to start from")
    p.add_argument("--root", default=str(DEFAULT_SCAN_ROOT), help="folder of the SCAN files")
    p.add_argument("--out", default=None)
    p.add_argument("--beams", default="1,5", help="beam sizes to evaluate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backend", choices=("auto", "rnnkit", "torch"), default="auto",
                   help="recurrent layers: rnnkit's engine (auto) or torch.nn's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a Seq2SeqConfig field, e.g. --set dropout=0.5")
    p.add_argument("--skip-train", action="store_true", help="only evaluate --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or f"runs/scan_{args.split}"
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = config_from_dict(Seq2SeqConfig, {**PRESETS[args.preset], "backend": args.backend,
                                           "train": str(scan_path(args.root, args.split)),
                                           "out": out, "threads": args.threads, **overrides})
    if not args.skip_train:
        main(cfg)
    model, src_vocab, tgt_vocab, meta = load_seq2seq(out)
    test = read_pairs(scan_path(args.root, args.split, "test"))
    rows = {}
    print(f"| SCAN {args.split} test ({len(test)} pairs) | exact match | token acc | BLEU | s |")
    print("|---|---|---|---|---|")
    for beam in (int(b) for b in args.beams.split(",")):
        t0 = time.perf_counter()
        scores, _ = evaluate_pairs(model, src_vocab, tgt_vocab, test, beam=beam,
                                   max_len=meta["max_len"], batch_size=256)
        secs = time.perf_counter() - t0
        rows[beam] = scores
        print(f"| beam {beam} | {100 * scores['exact_match']:.2f}% | "
              f"{100 * scores['token_accuracy']:.2f}% | {scores['bleu']:.2f} | {secs:.0f} |")
    return rows


if __name__ == "__main__":
    run()
