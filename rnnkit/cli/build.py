"""`rnnkit build`: compile the engine's C++ extensions ahead of time into the per-user cache."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnkit.engine._build import FUSED, VARIANTS

    for ext in (FUSED, VARIANTS):
        start = time.perf_counter()
        if ext.load(verbose=args.verbose) is None:
            print(f"rnnkit build: failed: {ext.error}", file=sys.stderr)
            return 1
        print(f"rnnkit build: {ext.what} ready in {ext.cache_dir()} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build", help="compile the fused CPU engine and variant kernels now "
                      "(otherwise each builds on first use)")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    parser.set_defaults(func=run)
