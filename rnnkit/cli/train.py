"""`rnnkit train TASK`: a sub-command group; each task module in _TASKS adds its own parser."""

from __future__ import annotations

import argparse
import importlib

__all__ = ["add_parser"]

# Each module named here (in rnnkit/cli/) defines `add_task_parser(tasks) -> None`, adding
# one `rnnkit train <task>` parser that sets `func=<callable(args) -> int>`.
_TASKS = ["train_lm", "train_seq2seq", "train_classify", "train_music"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (rnnkit train TASK --help)",
                                   description="Train a model. Tasks: see below.")
    tasks = parser.add_subparsers(dest="task", metavar="TASK")
    for name in _TASKS:
        importlib.import_module(f"rnnkit.cli.{name}").add_task_parser(tasks)
    parser.set_defaults(func=lambda args: _no_task(parser))


def _no_task(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
