"""`rnnkit train lm`: train a character- or word-level language model (flags = LMConfig fields)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_task_parser", "run"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.config import add_config_flags
    from rnnkit.train.lm import PRESETS, LMConfig

    parser = tasks.add_parser(
        "lm", help="character/word language model",
        description="Train a language model on a text file or folder (default: the Python "
                    "standard library's source), then print a sample. Settings resolve as: "
                    "defaults (the 2-minute demo), then --preset, then --config, then flags.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="a named set of settings")
    parser.add_argument("--config", default=None, metavar="FILE.json",
                        help="JSON file of settings (a run's config.json works)")
    add_config_flags(parser, LMConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.train.config import resolve_config
    from rnnkit.train.lm import PRESETS, LMConfig, main

    try:
        cfg = resolve_config(LMConfig, args, PRESETS)
    except (ValueError, FileNotFoundError) as err:
        print(f"rnnkit train lm: error: {err}", file=sys.stderr)
        return 2
    main(cfg)
    return 0
