"""Forecaster: windows, scaling, learning a periodic series, recursive forecasts."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.models.forecaster import Forecaster, windows


def test_windows_pair_each_window_with_what_follows():
    s = torch.arange(10.0)
    x, y = windows(s, window=3, horizon=2)
    assert x.shape == (3, 6, 1) and y.shape == (6, 2, 1)
    torch.testing.assert_close(x[:, 4, 0], torch.tensor([4.0, 5.0, 6.0]))
    torch.testing.assert_close(y[4, :, 0], torch.tensor([7.0, 8.0]))
    with pytest.raises(ValueError, match="no window of 8 followed by 3 steps"):
        windows(s, 8, 3)


def test_scaler_makes_the_model_blind_to_units():
    model = Forecaster(2, horizon=2, hidden_size=4).double()
    series = torch.randn(50, 2, dtype=torch.float64) * torch.tensor([1.0, 1000.0]) + 5
    model.fit_scaler(series)
    x = series[:10].unsqueeze(1)
    y = model(x)
    shifted = Forecaster(2, horizon=2, hidden_size=4).double()
    shifted.load_state_dict(model.state_dict())
    shifted.fit_scaler(series * 3 + 1)
    torch.testing.assert_close(shifted(x * 3 + 1), y * 3 + 1)


def test_learns_a_sine_and_forecasts_beyond_its_horizon():
    torch.manual_seed(0)
    t = torch.arange(400.0)
    series = torch.sin(2 * math.pi * t / 25) + 0.5 * torch.sin(2 * math.pi * t / 7)
    model = Forecaster(1, horizon=5, hidden_size=32, cell="gru").fit_scaler(series[:300])
    x, y = windows(series[:300], window=30, horizon=5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        idx = torch.randint(0, x.shape[1], (64,))
        loss = model.loss(x[:, idx], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = model.forecast(series[270:300].view(30, 1, 1), steps=20)[0, :, 0]
    rmse = (pred - series[300:320]).pow(2).mean().sqrt()
    assert rmse < 0.15 * series.std()  # a zero forecast scores about 1.0 of the std
