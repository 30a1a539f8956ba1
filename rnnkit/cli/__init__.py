"""The `rnnkit` command: one sub-command per module in this package, each with `add_parser`."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# Each module named here defines `add_parser(subparsers) -> None`; the parser it adds sets
# `func=<callable(args) -> int>` as its default.
_COMMANDS = ["demo", "train", "sample", "bench", "build", "esn", "translate", "evaluate", "lab",
             "classify"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks on PyTorch."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"rnnkit.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
