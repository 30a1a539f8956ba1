"""`rnnkit train lm`: train a character- or word-level language model (flags = LMConfig fields)."""

from __future__ import annotations

import argparse

from rnnkit.cli.train import add_config_task

__all__ = ["add_task_parser"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.lm import PRESETS, LMConfig, main

    add_config_task(
        tasks, "lm", LMConfig, main, help="character/word language model",
        description="Train a language model on a text file or folder (default: the Python "
                    "standard library's source, the 2-minute demo), then print a sample.",
        presets=PRESETS)
