"""The forecasting application: ForecastConfig, the series -> windows pipeline (transform,
split, scaling fitted on the training part), `main(config)` and `forecast_from_run`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.forecast_series import Series, detect_season, is_bundled, load_series
from rnnkit.models.forecaster import Forecaster, windows
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["ForecastConfig", "TINY", "PRESETS", "main", "load_run", "to_features",
           "from_features", "forecast_from_run", "training_series", "holdout_of",
           "data_fingerprint",
           "WindowBatches"]

TRANSFORMS = ("none", "diff", "log", "log-diff")


@dataclass
class ForecastConfig(TrainConfig):
    """Forecast the next `horizon` values of a series from a sliding window of its past."""

    data: str = option("", "a CSV file, or a bundled series: statsmodels:sunspots, "
                     "statsmodels:co2, statsmodels:nile, aeon:airline")
    column: str = option("", "the numeric target column (default for a bundled series: its "
                       "only column)")
    covariates: str = option("", "comma-separated numeric columns read beside the target "
                           "(the model forecasts them too when it feeds predictions back)")
    date_column: str = option("", "a CSV column of dates (optional; checked to exist, "
                            "not modelled: rows are taken in file order)")
    horizon: int = option(12, "steps to forecast, H", low=1)
    window: int = option(24, "past steps the model reads, T", low=2)
    strategy: str = option("direct", "direct: predict the H values at once; recursive: "
                         "predict one step and feed it back H times", ("direct", "recursive"))
    season: int = option(0, "season length m for the seasonal-naive baseline and MASE "
                       "(0: detected from the autocorrelation)")
    transform: str = option("none", "applied to the target before scaling (and undone after "
                          "forecasting): diff models the changes step to step, log the "
                          "logarithm", TRANSFORMS)
    holdout: int = option(-1, "final points of --data kept out of training for `rnnkit eval "
                        "RUN --test DATA` (-1: the horizon for a bundled series, 0 for a file)",
                        low=-1)
    valid_fraction: float = option(0.15, "share of the training series (at least the "
                                 "horizon) whose windows validate", below=1.0)
    out: str = option("runs/forecast", "run directory")
    cell: str = option("lstm", "recurrent cell", ("lstm", "gru", "rnn"))
    hidden_size: int = option(32, "hidden size H", low=1)
    num_layers: int = option(1, "stacked layers L", low=1)
    dropout: float = option(0.0, "dropout between layers", below=1.0)
    batch_size: int = option(32, "windows per batch", low=1)
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(1.0, "stop after this many minutes (0: no limit)")
    lr: float = option(3e-3, "peak learning rate")
    eval_every: int = option(50, "evaluate and checkpoint every N steps", low=1)
    carry_state: bool = option(False, "windows are independent: no state is carried")
    # Small models: a second intra-op thread only adds barrier waits (about 17x fewer steps in
    # the same time, measured with torch's default count on a busy 2-core machine).
    threads: int = option(1, "torch intra-op threads (0: torch's default)")


TINY: dict[str, Any] = dict(hidden_size=8, batch_size=8, max_steps=6, time_budget=0.0,
                            eval_every=3, window=8, horizon=4, progress=False)
PRESETS: dict[str, dict[str, Any]] = {"tiny": TINY}


def holdout_of(cfg: ForecastConfig) -> int:
    """Points at the end of cfg.data kept out of training."""
    if cfg.holdout >= 0:
        return cfg.holdout
    return cfg.horizon if is_bundled(cfg.data) else 0


def training_series(cfg: ForecastConfig) -> tuple[Series, Series]:
    """(the whole series of cfg.data, its training part: all but the holdout)."""
    cov = [c.strip() for c in cfg.covariates.split(",") if c.strip()]
    full = load_series(cfg.data, cfg.column, cov, cfg.date_column)
    n = len(full) - holdout_of(cfg)
    train = Series(full.name, full.column, full.values[:n], full.covariates[:n],
                   full.covariate_names, full.dates[:n])
    return full, train


def to_features(values: np.ndarray, covariates: np.ndarray, transform: str) -> Tensor:
    """Model input rows (N', F): the transformed target then the covariates; the diff
    transforms drop the first step (N' = N - 1)."""
    y = np.asarray(values, np.float64)
    if "log" in transform:
        if (y <= 0).any():
            raise ValueError(f"transform {transform!r} needs a positive series; its minimum "
                             f"is {y.min()}")
        y = np.log(y)
    cov = np.asarray(covariates, np.float64).reshape(len(values), -1)
    if "diff" in transform:
        y, cov = np.diff(y), cov[1:]
    return torch.from_numpy(np.column_stack([y, cov])).float()


def from_features(target: np.ndarray, last_value: float, transform: str) -> np.ndarray:
    """Undo `to_features` on forecast target rows (H,) that follow a series ending in
    `last_value`."""
    z = np.asarray(target, np.float64)
    if "diff" in transform:
        start = np.log(last_value) if "log" in transform else last_value
        z = start + np.cumsum(z)
    return np.exp(z) if "log" in transform else z


class WindowBatches:
    """Shuffled batches of (input window, next values) pairs from x (T, M, F), y (M, h, F);
    each batch time-major: (T, B, F), (h, B, F)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int = 0) -> None:
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.order = torch.arange(y.shape[0])

    def __len__(self) -> int:
        return max(1, -(-self.y.shape[0] // self.batch_size))

    def set_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed + epoch)
        self.order = torch.randperm(self.y.shape[0], generator=g)

    def batch(self, index: int) -> tuple[Tensor, Tensor]:
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        # time-major both, as every rnnkit batch (distributed training cuts dim 1 of each)
        return self.x[:, idx], self.y[idx].transpose(0, 1)  # (T, B, F), (h, B, F)


def _split(cfg: ForecastConfig, feats: Tensor, step: int) -> tuple[Tensor, ...]:
    """Training and validation windows: a window validates when its targets lie in the last
    V rows (V = max(H, valid_fraction * N)); it trains when they end before them."""
    n = feats.shape[0]
    v = max(cfg.horizon, round(cfg.valid_fraction * n))
    if n - v < cfg.window + step:
        raise ValueError(f"the training series ({n} usable steps) is too short for window "
                         f"{cfg.window} + {step} predicted steps before its last {v} "
                         f"validation steps; lower --window or --horizon")
    x, y = windows(feats, cfg.window, step)  # (T, M, F), (M, step, F)
    first_target = torch.arange(y.shape[0]) + cfg.window
    train = first_target + step <= n - v
    valid = first_target >= n - v
    if not valid.any():  # targets longer than the validation part: the last window
        valid[-1] = True
    return x[:, train], y[train], x[:, valid], y[valid], n - v


def data_fingerprint(cfg: ForecastConfig, full: Series) -> str:
    """What a resumed or evaluated run must share with the saved one: the series, the holdout
    and how windows are cut from it (window, transform, validation share)."""
    return fingerprint(full.values.tolist(), full.covariates.tolist(), holdout_of(cfg),
                       cfg.window, cfg.transform, cfg.valid_fraction)


def main(config: ForecastConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a Forecaster as `config` says; returns the Trainer's summary."""
    if not config.data:
        raise ValueError("data is required: a CSV file or a bundled series such as "
                         "statsmodels:sunspots (--data)")
    with start_run(config, log) as out:
        return _train(config, out, log)


def _train(cfg: ForecastConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    full, series = training_series(cfg)
    season = cfg.season or detect_season(series.values)
    feats = to_features(series.values, series.covariates, cfg.transform)
    step = cfg.horizon if cfg.strategy == "direct" else 1
    xt, yt, xv, yv, n_fit = _split(cfg, feats, step)
    log(f"data: {series.name} column {series.column!r}: {len(full)} points, "
        f"{len(series)} for training ({yt.shape[0]} train / {yv.shape[0]} valid windows), "
        f"{holdout_of(cfg)} held out; season {season}"
        f"{' (detected)' if not cfg.season else ''}")
    args = dict(num_features=feats.shape[1], horizon=step, hidden_size=cfg.hidden_size,
                num_layers=cfg.num_layers, cell=cfg.cell, dropout=cfg.dropout,
                backend=cfg.backend)
    model = Forecaster(**args)
    model.fit_scaler(feats[:n_fit])  # the training part only

    def loss_fn(m: Forecaster, batch: tuple, state: Any) -> tuple:
        x, y = batch  # (T, B, F), (h, B, F)
        return m.loss(x, y.transpose(0, 1)), None, int(y.numel())

    def evaluate(m: Forecaster) -> dict[str, float]:
        return {"loss": m.loss(xv, yv).item()}

    meta = {"model_class": "Forecaster", "model_args": args, "task": "forecast",
            "season": season, "data_fingerprint": data_fingerprint(cfg, full),
            "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, WindowBatches(xt, yt, cfg.batch_size, cfg.seed), loss_fn,
                      evaluate, out, meta, log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    summary = trainer.fit()
    if distributed.is_main():
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def load_run(path: str | Path, prefer: str = "best"
             ) -> tuple[Forecaster, ForecastConfig, dict[str, Any]]:
    """The Forecaster of a run (eval mode), its config and checkpoint metadata."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("task") != "forecast":
        raise ValueError(f"checkpoint {str(where)!r} is not a forecasting run")
    model = Forecaster(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    from rnnkit.train.config import config_from_dict

    return model.eval(), config_from_dict(ForecastConfig, meta["run_config"]), meta


def forecast_from_run(model: Forecaster, cfg: ForecastConfig, series: Series,
                      steps: int) -> np.ndarray:
    """The `steps` target values after the end of `series`, in its units: direct models
    predict H at once (and roll on for longer forecasts), recursive ones one at a time."""
    feats = to_features(series.values, series.covariates, cfg.transform)
    if feats.shape[0] < cfg.window:
        raise ValueError(f"the series has {feats.shape[0]} usable steps, fewer than the "
                         f"window {cfg.window}")
    with torch.no_grad():
        pred = model.forecast(feats[-cfg.window:].unsqueeze(1), steps)  # (1, steps, F)
    return from_features(pred[0, :, 0].double().numpy(), float(series.values[-1]),
                         cfg.transform)
