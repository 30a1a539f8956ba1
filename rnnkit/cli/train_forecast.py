"""`rnnkit train forecast`: forecast a series from a sliding window (flags = ForecastConfig)."""

from __future__ import annotations

import argparse

from rnnkit.cli.train import add_config_task

__all__ = ["add_task_parser"]


def add_task_parser(tasks: argparse._SubParsersAction) -> None:
    from rnnkit.train.forecast import PRESETS, ForecastConfig, main

    add_config_task(
        tasks, "forecast", ForecastConfig, main, presets=PRESETS,
        help="time-series forecasting (CSV files, statsmodels/aeon series)",
        description="Train a recurrent forecaster on a CSV column or a bundled series "
                    "(statsmodels:sunspots, statsmodels:co2, statsmodels:nile, aeon:airline) "
                    "to predict the next --horizon values; score it with `rnnkit eval RUN "
                    "--test DATA`.")
