"""`rnnkit classify RUN TEXT...`: the most probable labels for each text."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("classify", help="label texts with a trained classifier")
    p.add_argument("run", help="run directory of `rnnkit train classify`")
    p.add_argument("texts", nargs="*", help="texts to label (default: lines of stdin)")
    p.add_argument("--top", type=int, default=3, help="labels to show per text")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.train.classify import load_classifier, predict

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    load_classifier(args.run)  # a wrong or damaged run is reported before reading stdin
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UserError("no texts given (arguments or stdin)")
    for text, ranked in zip(texts, predict(args.run, texts, args.top), strict=True):
        shown = "  ".join(f"{label} {p:.2f}" for label, p in ranked)
        print(f"{text}\t{shown}")
    return 0
