"""`rnnkit build`: compile the engine's C++ extension ahead of time into the per-user cache."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnkit.engine._build import ENGINE, load_extension

    start = time.perf_counter()
    if load_extension(verbose=args.verbose) is None:
        print(f"rnnkit build: failed: {ENGINE.error}", file=sys.stderr)
        return 1
    print(f"rnnkit build: {ENGINE.what} ready in {ENGINE.cache_dir()} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build", help="compile the fused CPU engine now (otherwise it builds on first use)")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    parser.set_defaults(func=run)
