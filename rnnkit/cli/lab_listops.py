"""`rnnkit lab listops --model tree-lstm|binary-tree-lstm|lstm --out RUN [--budget MIN]` (train
one model on ListOps, test it at every depth) and `rnnkit lab listops-table RUN...` (the table
of test accuracy per depth of several runs, as markdown)."""

from __future__ import annotations

import argparse

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    from rnnkit.cli.train import add_config_task
    from rnnkit.lab.listops import TINY, ListOpsConfig, main

    add_config_task(
        sub, "listops", ListOpsConfig, main,
        help="train a tree or sequence model on ListOps, test per depth",
        description="Train one model on ListOps-style expressions (MAX, MIN, SUM_MOD of "
                    "digits) of depth <= --train-depth and test its best checkpoint on fixed "
                    "test sets of each depth 1..--test-depth (OUT/test.json). Test expressions "
                    "at training depths come from a held-out 10% of all expressions (by hash), "
                    "so they never occur in training.",
        presets={"tiny": TINY})
    sub.choices["listops"].add_argument(
        "--budget", dest="time_budget", type=float, default=argparse.SUPPRESS, metavar="MIN",
        help="minutes of training (same as --time-budget)")
    t = sub.add_parser(
        "listops-table", help="table of ListOps test accuracy per depth of several runs",
        description="Print (and write, --out) a markdown table of the test accuracy per depth "
                    "of `rnnkit lab listops` runs beside the majority-class baseline. A run "
                    "without test.json has its checkpoint tested first.")
    t.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    t.add_argument("--out", default="listops_table.md",
                   help="markdown file to write (default: listops_table.md)")
    t.set_defaults(func=_table)


def _table(args: argparse.Namespace) -> int:
    from rnnkit.lab.listops_table import listops_table, write_table

    text = listops_table(args.runs)  # a bad run is a ValueError / OSError: one-line error
    print(text, end="")
    print(f"written to {write_table(text, args.out)}")
    return 0
