"""`rnnkit train TASK`: a sub-command group; each task module in _TASKS adds its own parser."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "add_config_task"]

# Each module named here (in rnnkit/cli/) defines `add_task_parser(tasks) -> None`, adding
# one `rnnkit train <task>` parser that sets `func=<callable(args) -> int>`.
_TASKS = ["train_lm", "train_seq2seq", "train_classify", "train_music", "train_forecast",
          "train_tag"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (rnnkit train TASK --help)",
                                   description="Train a model. Tasks: see below.")
    tasks = parser.add_subparsers(dest="task", metavar="TASK")
    for name in _TASKS:
        importlib.import_module(f"rnnkit.cli.{name}").add_task_parser(tasks)
    parser.set_defaults(func=lambda args: _no_task(parser))


def add_config_task(tasks: argparse._SubParsersAction, name: str, config_cls: type,
                    main: Callable[[Any], Any], help: str, description: str,
                    presets: dict[str, dict[str, Any]] | None = None) -> None:
    """Add `rnnkit train NAME`: one flag per field of `config_cls`, `--config FILE.json`,
    `--preset` when there are presets; runs `main(config)`, as one of several processes when
    torchrun started it (rnnkit.train.distributed). Bad settings or data end with a one-line
    error and exit code 2 (`rnnkit.cli.main` reports them)."""
    from rnnkit.train.config import add_config_flags, resolve_config

    parser = tasks.add_parser(name, help=help, description=description + " Settings resolve "
                              "as: defaults, then --preset, then --config, then flags.")
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), default=None,
                            help="a named set of settings")
    parser.add_argument("--config", default=None, metavar="FILE.json",
                        help="JSON file of settings (a run's config.json works)")
    add_config_flags(parser, config_cls)

    def run(args: argparse.Namespace) -> int:
        from rnnkit.train import distributed

        config = resolve_config(config_cls, args, presets)
        with distributed.session():  # under torchrun: join the other processes; rank 0 logs
            if distributed.is_main():
                main(config)
            else:
                main(config, log=lambda line: None)
        return 0

    parser.set_defaults(func=run)


def _no_task(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
