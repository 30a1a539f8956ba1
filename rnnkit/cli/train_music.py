"""`rnnkit train music`: next-frame model of polyphonic piano rolls (flags = MusicConfig)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_task_parser", "run"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.config import add_config_flags
    from rnnkit.train.music import MusicConfig

    parser = tasks.add_parser(
        "music", help="polyphonic music (piano rolls, e.g. JSB Chorales)",
        description="Train a next-frame model on a piano-roll .mat file (traindata, validdata, "
                    "testdata) and report the test negative log-likelihood per frame.")
    parser.add_argument("--config", default=None, metavar="FILE.json",
                        help="JSON file of settings (a run's config.json works)")
    add_config_flags(parser, MusicConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.train.config import resolve_config
    from rnnkit.train.music import MusicConfig, main

    try:
        cfg = resolve_config(MusicConfig, args)
        main(cfg)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"rnnkit train music: error: {err}", file=sys.stderr)
        return 2
    return 0
