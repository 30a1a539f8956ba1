"""`rnnkit train music`: next-frame model of polyphonic piano rolls (flags = MusicConfig)."""

from __future__ import annotations

import argparse

from rnnkit.cli.train import add_config_task

__all__ = ["add_task_parser"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.music import MusicConfig, main

    add_config_task(
        tasks, "music", MusicConfig, main,
        help="polyphonic music (piano rolls, e.g. JSB Chorales)",
        description="Train a next-frame model on a piano-roll .mat file (traindata, "
                    "validdata, testdata) and report the test negative log-likelihood per "
                    "frame.")
