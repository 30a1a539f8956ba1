"""`rnnkit train forecast` and `rnnkit eval` on forecasting runs, end to end on the fused
engine: direct and recursive runs, scaling fitted on the training part, the held-out split of
a bundled series, one-line errors for malformed CSV files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rnnkit.cli import main as cli
from rnnkit.train.config import config_from_dict
from rnnkit.train.forecast import TINY, ForecastConfig, forecast_from_run, load_run, main
from rnnkit.train.forecast_eval import seasonal_naive


def _series(n: int) -> np.ndarray:
    t = np.arange(n)
    return 10 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 6)


def _csv(path, values, start=0):
    path.write_text("date,y\n" + "".join(f"d{start + i},{v:.6f}\n"
                                         for i, v in enumerate(values)))
    return path


def test_cli_trains_and_evaluates_a_csv(tmp_path, capsys, ext):
    values = _series(90)
    data, test = _csv(tmp_path / "s.csv", values[:80]), _csv(tmp_path / "t.csv", values[80:], 80)
    run = tmp_path / "run"
    assert cli(["train", "forecast", "--data", str(data), "--column", "y", "--date-column",
                "date", "--preset", "tiny", "--out", str(run)]) == 0
    capsys.readouterr()
    assert cli(["eval", str(run), "--test", str(test), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(lines[-1])
    assert scores["season"] == 6 and scores["steps"] == 10
    assert all(math.isfinite(scores[k]) for k in ("mae", "mase", "mae_seasonal_naive",
                                                  "mase_seasonal_naive", "mae_persistence"))
    # the baseline numbers are the baselines' own: seasonal naive repeats the last 6 points
    sn = seasonal_naive(values[:80], 10, 6)
    assert scores["mae_seasonal_naive"] == pytest.approx(np.abs(sn - values[80:]).mean())
    assert (run / "forecast.png").stat().st_size > 1000
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["split"] == "test" and rows[-1]["mae"] == pytest.approx(scores["mae"])
    # a file holding the whole series scores the same continuation
    whole = _csv(tmp_path / "whole.csv", values)
    assert cli(["eval", str(run), "--test", str(whole), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["mae"] == pytest.approx(scores["mae"])


@pytest.mark.parametrize("strategy,transform", [("direct", "diff"), ("recursive", "none")])
def test_both_strategies_train_and_forecast(tmp_path, strategy, transform, ext):
    values = _series(70)
    data = _csv(tmp_path / "s.csv", values)
    cfg = config_from_dict(ForecastConfig, {**TINY, "data": str(data), "column": "y",
                                            "out": str(tmp_path / "run"), "strategy": strategy,
                                            "transform": transform})
    summary = main(cfg, log=lambda line: None)
    assert summary["step"] == 6
    model, saved, meta = load_run(tmp_path / "run")
    assert model.horizon == (4 if strategy == "direct" else 1)
    # the scaler saw only the training part: all but the validation tail of max(H, 15%)
    feats = np.diff(values) if transform == "diff" else values
    n_fit = len(feats) - max(4, round(0.15 * len(feats)))
    assert model.mean.item() == pytest.approx(feats[:n_fit].mean(), rel=1e-5)
    assert model.scale.item() == pytest.approx(feats[:n_fit].std(ddof=1), rel=1e-5)
    from rnnkit.train.forecast import training_series

    pred = forecast_from_run(model, saved, training_series(saved)[1], 9)
    assert pred.shape == (9,) and np.isfinite(pred).all()


def test_covariates_are_read_and_forecast_beside_the_target(tmp_path, capsys, ext):
    values = _series(60)
    data = tmp_path / "c.csv"
    data.write_text("y,temp\n" + "".join(f"{v:.4f},{i % 5}\n" for i, v in enumerate(values)))
    run = tmp_path / "run"
    assert cli(["train", "forecast", "--data", str(data), "--column", "y", "--covariates",
                "temp", "--preset", "tiny", "--out", str(run)]) == 0
    model, cfg, _ = load_run(run)
    assert model.num_features == 2
    # the scaler saw the covariate's training part too: 0..4 repeating over the fitted rows
    n_fit = 60 - max(4, round(0.15 * 60))
    assert model.mean[1].item() == pytest.approx(np.mean(np.arange(n_fit) % 5), rel=1e-5)
    test = _csv(tmp_path / "t.csv", _series(66)[60:], 60)
    capsys.readouterr()
    assert cli(["eval", str(run), "--test", str(test), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 6


def test_bundled_series_holds_out_its_last_horizon(tmp_path, capsys, ext):
    sd = pytest.importorskip("statsmodels.datasets")
    nile = sd.nile.load_pandas().data["volume"].to_numpy(float)
    run = tmp_path / "run"
    assert cli(["train", "forecast", "--data", "statsmodels:nile", "--preset", "tiny",
                "--strategy", "recursive", "--season", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert cli(["eval", str(run), "--test", "statsmodels:nile", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["steps"] == 4
    # with m = 1 seasonal naive is persistence: the last training value, 4 points from the end
    assert scores["mae_persistence"] == pytest.approx(np.abs(nile[-4:] - nile[-5]).mean())
    assert scores["mae_seasonal_naive"] == pytest.approx(scores["mae_persistence"])
    assert cli(["eval", str(run), "--test", "aeon:airline"]) == 2
    assert "a bundled series tests only a run trained on it" in capsys.readouterr().err


def test_malformed_csv_is_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_text("date,y\n" + "".join(f"d{i},{i}\n" for i in range(30)) + "d30,NA\n")
    assert cli(["train", "forecast", "--data", str(data), "--column", "y", "--preset", "tiny",
                "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 32: column 'y' is missing ('NA')" in err
    assert cli(["train", "forecast", "--data", str(data), "--preset", "tiny",
                "--out", str(tmp_path / "run")]) == 2
    assert "column is required" in capsys.readouterr().err
