"""Forecast scoring: baselines, MAE and MASE on hand-checked series, season detection, the
target transforms, and CSV reading errors."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data.forecast_series import detect_season, read_series_csv
from rnnkit.train.forecast import from_features, to_features
from rnnkit.train.forecast_eval import (
    evaluate_forecasts,
    mase_scale,
    persistence,
    seasonal_naive,
)

HISTORY = np.array([1.0, 2.0, 3.0, 5.0, 4.0, 6.0])


def test_baselines_repeat_the_last_season_and_the_last_value():
    assert seasonal_naive(HISTORY, 3, 2).tolist() == [4.0, 6.0, 4.0]
    assert seasonal_naive(HISTORY, 4, 3).tolist() == [5.0, 4.0, 6.0, 5.0]
    assert seasonal_naive(HISTORY, 2, 1).tolist() == [6.0, 6.0]
    assert persistence(HISTORY, 3).tolist() == [6.0, 6.0, 6.0]
    with pytest.raises(ValueError, match="season must be in 1..6"):
        seasonal_naive(HISTORY, 2, 7)


def test_mae_and_mase_by_hand():
    # in-sample seasonal-naive errors (m=2): |3-1|, |5-2|, |4-3|, |6-5| -> mean 7/4
    assert mase_scale(HISTORY, 2) == pytest.approx(1.75)
    truth, pred = np.array([4.0, 7.0, 3.0]), np.array([4.0, 6.0, 5.0])
    s = evaluate_forecasts(HISTORY, truth, pred, 2)
    assert s["mae"] == pytest.approx(1.0)  # 0, 1, 2
    assert s["mase"] == pytest.approx(1.0 / 1.75)
    assert s["mae_seasonal_naive"] == pytest.approx(2 / 3)  # 4,6,4 vs 4,7,3: 0, 1, 1
    assert s["mase_seasonal_naive"] == pytest.approx(2 / 3 / 1.75)
    assert s["mae_persistence"] == pytest.approx(2.0)  # 6,6,6: 2, 1, 3
    assert s["mase_persistence"] == pytest.approx(2.0 / 1.75)
    with pytest.raises(ValueError, match="constant one season apart"):
        mase_scale(np.array([1.0, 2.0, 1.0, 2.0]), 2)


@pytest.mark.parametrize("period", [7, 12])
def test_season_detected_on_a_trending_seasonal_series(period):
    rng = np.random.default_rng(0)
    t = np.arange(20 * period)
    y = 0.05 * t + np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal(len(t))
    assert detect_season(y) == period


def test_no_season_in_noise_or_a_line():
    rng = np.random.default_rng(1)
    assert detect_season(np.cumsum(rng.standard_normal(300))) == 1  # a random walk
    assert detect_season(np.arange(50.0)) == 1


@pytest.mark.parametrize("transform", ["none", "diff", "log", "log-diff"])
def test_transforms_are_undone(transform):
    y = np.array([3.0, 4.0, 6.0, 5.0, 9.0, 10.0])
    feats = to_features(y[:4], np.zeros((4, 0)), transform).double().numpy()
    future = to_features(y, np.zeros((6, 0)), transform).double().numpy()[-2:, 0]
    assert feats.shape == ((3, 1) if "diff" in transform else (4, 1))
    np.testing.assert_allclose(from_features(future, y[3], transform), y[4:], rtol=1e-6)


def test_log_refuses_a_non_positive_series():
    with pytest.raises(ValueError, match="needs a positive series; its minimum is 0.0"):
        to_features(np.array([1.0, 0.0, 2.0]), np.zeros((3, 0)), "log")


def test_csv_reading_and_its_errors(tmp_path):
    good = tmp_path / "s.csv"
    good.write_text("day,load,temp\nmon,1.5,20\ntue,2.5,21\n\nwed,3,19\n")
    s = read_series_csv(good, "load", ["temp"], "day")
    assert s.values.tolist() == [1.5, 2.5, 3.0] and s.covariates[:, 0].tolist() == [20, 21, 19]
    assert s.dates == ["mon", "tue", "wed"]
    bad = tmp_path / "bad.csv"
    bad.write_text("day,load\nmon,1\ntue,\nwed,3\n")
    with pytest.raises(ValueError, match=r"row 3: column 'load' is missing"):
        read_series_csv(bad, "load")
    bad.write_text("day,load\nmon,1\ntue,2\nwed,x3\n")
    with pytest.raises(ValueError, match=r"row 4: column 'load' holds 'x3', expected a number"):
        read_series_csv(bad, "load")
    with pytest.raises(ValueError, match=r"column 'price' is not in the header"):
        read_series_csv(good, "price")
