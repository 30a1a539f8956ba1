"""`rnnkit build`: compile the fused CPU engine ahead of time into the per-user cache."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnkit.engine._build import build_error, cache_dir, load_extension

    start = time.perf_counter()
    module = load_extension(verbose=args.verbose)
    if module is None:
        print(f"rnnkit build: failed: {build_error()}", file=sys.stderr)
        return 1
    print(f"rnnkit build: fused engine ready in {cache_dir()} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build", help="compile the fused CPU engine now (otherwise it builds on first use)")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    parser.set_defaults(func=run)
