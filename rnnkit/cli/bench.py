"""`rnnkit bench`: the fused engine against torch.nn (and onnxruntime); see
rnnkit.benchmarks.engine."""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from rnnkit.benchmarks import engine as bench

    parser = subparsers.add_parser(
        "bench", help="time the fused CPU engine against torch.nn and onnxruntime",
        description=bench.__doc__)
    bench.add_arguments(parser)
    parser.set_defaults(func=bench.run_from_args)
