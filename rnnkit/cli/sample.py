"""`rnnkit sample RUN_DIR`: generate text from a trained language model, streamed to stdout."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample", help="generate text from a trained language model",
        description="Prime the model with --prompt, then feed each prediction back.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or checkpoint directory")
    p.add_argument("--prompt", default="", help="text to start from (default: a newline)")
    p.add_argument("--length", type=int, default=500, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature (0: greedy)")
    p.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    p.add_argument("--seed", type=int, default=None, help="fix the random seed")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--skip-unknown", action="store_true",
                   help="drop prompt characters the model's vocabulary lacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.train.lm import sample

    for name in ("length", "top_k"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not 0.0 <= args.temperature < float("inf"):
        raise UserError(f"--temperature must be >= 0 (0: greedy), got {args.temperature}")
    if not 0.0 < args.top_p <= 1.0:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    sample(args.run_dir, args.prompt, args.length, 0.0 if args.greedy else args.temperature,
           args.top_k, args.top_p, args.seed, stream=sys.stdout,
           skip_unknown=args.skip_unknown, prefer=args.checkpoint)
    return 0
