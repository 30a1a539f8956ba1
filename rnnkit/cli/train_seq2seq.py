"""`rnnkit train seq2seq`: train an encoder-decoder on parallel pairs (flags = Seq2SeqConfig)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_task_parser", "run"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.config import add_config_flags
    from rnnkit.train.seq2seq import PRESETS, Seq2SeqConfig

    parser = tasks.add_parser(
        "seq2seq", help="encoder-decoder on parallel pairs (translation)",
        description="Train a sequence-to-sequence model on source<TAB>target lines (or SCAN "
                    "files). Settings resolve as: defaults, then --preset, then --config, then "
                    "flags.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="a named set of settings")
    parser.add_argument("--config", default=None, metavar="FILE.json",
                        help="JSON file of settings (a run's config.json works)")
    add_config_flags(parser, Seq2SeqConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.train.config import resolve_config
    from rnnkit.train.seq2seq import PRESETS, Seq2SeqConfig, main

    try:
        cfg = resolve_config(Seq2SeqConfig, args, PRESETS)
        if not cfg.train:
            raise ValueError("--train PAIRS is required")
        main(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"rnnkit train seq2seq: error: {err}", file=sys.stderr)
        return 2
    return 0
