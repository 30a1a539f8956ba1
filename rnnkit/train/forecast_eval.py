"""Scoring forecasts: the seasonal-naive and persistence baselines, MAE and MASE, the truth
that a `--test` names, the forecast PNG, and `rnnkit eval RUN --test ...` for forecasting runs.

How `--test` finds the truth (the values after the end of the training series):
- the run's own bundled series (`--test statsmodels:sunspots` for a run trained with
  `--data statsmodels:sunspots`): its final `holdout` points, which training never saw
  (holdout defaults to the horizon for a bundled series);
- a CSV file that starts with the whole training series (same number of leading rows, same
  values): the rows after it;
- any other CSV file: all its rows, as the continuation of the training series.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.data.forecast_series import Series, is_bundled, load_series

__all__ = ["seasonal_naive", "persistence", "mae", "mase_scale", "truth_after_training",
           "evaluate_forecasts", "plot_forecast", "run", "add_arguments",
           "is_forecast_run"]


def seasonal_naive(history: np.ndarray, steps: int, season: int) -> np.ndarray:
    """Each future step repeats the value one season earlier, from the last observed season:
    y_hat[N + h] = y[N - m + (h - 1) mod m] for h = 1..steps."""
    y = np.asarray(history, np.float64)
    if not 1 <= season <= len(y):
        raise ValueError(f"season must be in 1..{len(y)} (the history length), got {season}")
    return np.array([y[len(y) - season + (h % season)] for h in range(steps)])


def persistence(history: np.ndarray, steps: int) -> np.ndarray:
    """Every future step repeats the last observed value."""
    return np.full(steps, float(np.asarray(history)[-1]))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(truth, np.float64))))


def mase_scale(history: np.ndarray, season: int) -> float:
    """The in-sample seasonal-naive MAE, mean |y[t] - y[t - m]| over the history: MASE
    divides a forecast's MAE by it (below 1: better than seasonal naive did in sample)."""
    y = np.asarray(history, np.float64)
    if len(y) <= season:
        raise ValueError(f"the history ({len(y)} points) must be longer than the season "
                         f"{season} for MASE")
    scale = float(np.mean(np.abs(y[season:] - y[:-season])))
    if scale == 0.0:
        raise ValueError("the history is constant one season apart: MASE is undefined")
    return scale


def evaluate_forecasts(history: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                       season: int) -> dict[str, float]:
    """MAE and MASE of `pred` and of the two baselines against `truth`."""
    steps, scale = len(truth), mase_scale(history, season)
    out: dict[str, float] = {}
    for key, p in (("", pred), ("_seasonal_naive", seasonal_naive(history, steps, season)),
                   ("_persistence", persistence(history, steps))):
        out["mae" + key] = mae(p, truth)
        out["mase" + key] = out["mae" + key] / scale
    return out


def truth_after_training(test: str, cfg: Any, train: Series, full: Series) -> np.ndarray:
    """The values after the end of the training series that `test` names (module docstring)."""
    if is_bundled(test):
        if test != cfg.data or len(full) == len(train):
            raise ValueError(f"--test {test!r}: a bundled series tests only a run trained on "
                             f"it with held-out points (this run: --data {cfg.data!r}, "
                             f"{len(full) - len(train)} held out)")
        return full.values[len(train):]
    given = load_series(test, cfg.column or train.column, [], "")
    n = len(train)
    if len(given) > n and np.allclose(given.values[:n], train.values):
        return given.values[n:]
    return given.values


def plot_forecast(history: np.ndarray, truth: np.ndarray, preds: dict[str, np.ndarray],
                  path: str | Path, title: str, context: int = 0) -> Path:
    """Write a PNG: the last `context` history points, the truth after them, and each
    forecast; atomically (temporary file + rename)."""
    import os

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(history)
    context = context or min(n, max(4 * len(truth), 48))
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(range(n - context, n), history[-context:], color="black", label="history")
    future = range(n, n + len(truth))
    ax.plot(future, truth, color="black", linestyle="--", marker="o", markersize=3,
            label="truth")
    for name, p in preds.items():
        ax.plot(future, p, marker=".", label=name)
    ax.axvline(n - 0.5, color="grey", alpha=0.5)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)
    return out


def run(args: argparse.Namespace) -> int:
    """`rnnkit eval RUN --test DATA` for a forecasting run: print MAE / MASE of the RNN and
    of the baselines, write the PNG, append a 'test' row to metrics.jsonl."""
    from rnnkit.train import checkpoint as ckpt
    from rnnkit.train.forecast import (
        data_fingerprint,
        forecast_from_run,
        load_run,
        training_series,
    )
    from rnnkit.train.metrics import MetricsLog

    where = ckpt.find_checkpoint(args.run_dir, getattr(args, "checkpoint", "best"))
    model, cfg, meta = load_run(where)
    full, train = training_series(cfg)
    saved = meta.get("data_fingerprint")
    if saved != data_fingerprint(cfg, full):
        raise ValueError(f"the data of the run ({cfg.data!r}) changed since training")
    truth = truth_after_training(args.test, cfg, train, full)
    if len(truth) == 0:
        raise ValueError(f"--test {args.test!r} holds no values after the training series")
    season = int(meta["season"])
    pred = forecast_from_run(model, cfg, train, len(truth))
    scores = evaluate_forecasts(train.values, truth, pred, season)
    run_dir = Path(args.run_dir) if where != Path(args.run_dir) else where.parent
    png = Path(getattr(args, "plot", None) or run_dir / "forecast.png")
    plot_forecast(train.values, truth, {
        f"RNN ({cfg.strategy})": pred,
        f"seasonal naive (m={season})": seasonal_naive(train.values, len(truth), season),
        "persistence": persistence(train.values, len(truth))},
        png, f"{cfg.data} {train.column}: {len(truth)} steps")
    print(f"forecast: {len(truth)} steps after {len(train)} training points; season {season}")
    for label, key in (("RNN", ""), ("seasonal naive", "_seasonal_naive"),
                       ("persistence", "_persistence")):
        print(f"{label:>15}: MAE {scores['mae' + key]:.4f}  MASE {scores['mase' + key]:.4f}")
    print(f"plot: {png}")
    row = {"step": meta.get("step", 0), "split": "test", **scores, "steps": len(truth),
           "season": season, "test": str(args.test), "checkpoint": where.name}
    MetricsLog(run_dir / "metrics.jsonl").write(row)
    if getattr(args, "json", False):
        print(json.dumps({**scores, "steps": len(truth), "season": season}))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags forecasting adds to `rnnkit eval` (those another task already added stay)."""
    have = parser._option_string_actions
    if "--json" not in have:
        parser.add_argument("--json", action="store_true",
                            help="print the metrics as one JSON object on the last line")
    if "--plot" not in have:
        parser.add_argument("--plot", default=None, metavar="FILE.png",
                            help="forecasting runs: where the forecast PNG goes (None: "
                                 "RUN/forecast.png)")


def is_forecast_run(path: str) -> bool:
    """Whether `path` is a forecasting run (or one of its checkpoints)."""
    from rnnkit.train import checkpoint as ckpt

    try:
        meta = ckpt.load_checkpoint_meta(ckpt.find_checkpoint(path, "last"))
    except (OSError, ValueError):
        return False
    return meta.get("task") == "forecast"
