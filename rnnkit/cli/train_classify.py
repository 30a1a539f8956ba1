"""`rnnkit train classify`: a character-level sequence classifier (flags = ClassifyConfig)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_task_parser", "run"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.classify import ClassifyConfig
    from rnnkit.train.config import add_config_flags

    parser = tasks.add_parser(
        "classify", help="sequence classifier (default: surnames -> language)",
        description="Train a many-to-one classifier on text<TAB>label lines, or on the "
                    "built-in surnames-by-language set (--data names, needs faker).")
    parser.add_argument("--config", default=None, metavar="FILE.json",
                        help="JSON file of settings (a run's config.json works)")
    add_config_flags(parser, ClassifyConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.train.classify import ClassifyConfig, main
    from rnnkit.train.config import resolve_config

    try:
        cfg = resolve_config(ClassifyConfig, args)
    except (ValueError, FileNotFoundError) as err:
        print(f"rnnkit train classify: error: {err}", file=sys.stderr)
        return 2
    main(cfg)
    return 0
