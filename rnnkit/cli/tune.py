"""`rnnkit tune`: measure the fused engine's thresholds on this machine and save them (see
rnnkit.benchmarks.tune and docs/engine.md, "Tuning")."""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from rnnkit.benchmarks import tune

    parser = subparsers.add_parser(
        "tune", help="measure the engine's thresholds on this machine and save them",
        description=tune.__doc__)
    tune.add_arguments(parser)
    parser.set_defaults(func=tune.run_from_args)
