"""`rnnkit train seq2seq`: train an encoder-decoder on parallel pairs (flags = Seq2SeqConfig)."""

from __future__ import annotations

import argparse

from rnnkit.cli.train import add_config_task

__all__ = ["add_task_parser"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.seq2seq import PRESETS, Seq2SeqConfig, main

    add_config_task(
        tasks, "seq2seq", Seq2SeqConfig, main,
        help="encoder-decoder on parallel pairs (translation)",
        description="Train a sequence-to-sequence model on source<TAB>target lines (or SCAN "
                    "files).", presets=PRESETS)
