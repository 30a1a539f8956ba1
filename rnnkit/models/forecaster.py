"""Forecaster: read a window of a (multivariate) series, predict the next `horizon` steps."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models._streaming import rnn_step
from rnnkit.models.factory import make_rnn

__all__ = ["Forecaster", "windows"]


def windows(series: Tensor, window: int, horizon: int) -> tuple[Tensor, Tensor]:
    """Every (input window, next `horizon` values) pair of a series (N,) or (N, F).

    Returns x (window, M, F) time-major and y (M, horizon, F), M = N - window - horizon + 1.
    """
    s = series.unsqueeze(-1) if series.dim() == 1 else series  # (N, F)
    M = s.shape[0] - window - horizon + 1
    if M < 1:
        raise ValueError(f"a series of {s.shape[0]} steps has no window of {window} followed by "
                         f"{horizon} steps")
    idx = torch.arange(M).unsqueeze(1)
    x = s[idx + torch.arange(window)]  # (M, window, F)
    y = s[idx + window + torch.arange(horizon)]  # (M, horizon, F)
    return x.transpose(0, 1), y


class Forecaster(nn.Module):
    """Direct multi-step forecasting: the final state of a recurrent stack predicts all
    `horizon` future values at once (no error feedback between them); `forecast` rolls the
    model forward for longer horizons by feeding its predictions back.

    Inputs are standardised with the mean and scale fitted by `fit_scaler` (kept as
    buffers, so they travel with the checkpoint).

    Args:
        num_features: F, variables per step.
        horizon: steps predicted per call.
        hidden_size, num_layers, cell, dropout: the recurrent stack.

    Shape: x (T, B, F) -> (B, horizon, F).

    Example:
        >>> import torch
        >>> model = Forecaster(1, horizon=3, hidden_size=8)
        >>> tuple(model(torch.randn(20, 4, 1)).shape)
        (4, 3, 1)
    """

    def __init__(self, num_features: int = 1, horizon: int = 1, hidden_size: int = 64,
                 num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0,
                 **rnn_kwargs: Any) -> None:
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.num_features, self.horizon = num_features, horizon
        self.rnn = make_rnn(cell, num_features, hidden_size, num_layers, dropout, **rnn_kwargs)
        self.head = nn.Linear(hidden_size, horizon * num_features)
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("scale", torch.ones(num_features))

    def fit_scaler(self, series: Tensor) -> Forecaster:
        """Standardise with the mean and standard deviation of a training series (N, F)."""
        s = series.reshape(-1, self.num_features).to(self.mean.dtype)
        self.mean.copy_(s.mean(0))
        self.scale.copy_(s.std(0).clamp_min(1e-8))
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.num_features:
            raise ValueError(f"x must be (T, B, {self.num_features}), got {tuple(x.shape)}")
        out, _ = self.rnn((x - self.mean) / self.scale)  # (T, B, H)
        y = self.head(out[-1]).view(x.shape[1], self.horizon, self.num_features)
        return y * self.scale + self.mean  # (B, horizon, F)

    def step(self, x_t: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One value of an unbounded stream: the forecast after it and the new state.

        After feeding x_1..x_t one call at a time (each call's state into the next), the
        prediction is `forward(x_1..x_t)`, the next `horizon` values, in memory that does not
        grow with the stream (under `torch.no_grad()`, or with the state detached).

        Shape: x_t (B, F) (or (F,) unbatched) -> (B, horizon, F) (or (horizon, F)); the
        state (L, B, H) per field.

        Example:
            >>> model = Forecaster(1, horizon=2, hidden_size=8).eval()
            >>> with torch.no_grad():
            ...     y, state = model.step(torch.randn(4, 1))
            ...     y, state = model.step(torch.randn(4, 1), state)
            >>> tuple(y.shape)
            (4, 2, 1)
        """
        if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2) or \
                x_t.shape[-1] != self.num_features:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be one step, (B, {self.num_features}) or "
                             f"({self.num_features},), got {got}")
        out, state = rnn_step(self.rnn, (x_t - self.mean) / self.scale, state,
                              "Forecaster")  # (B, H)
        y = self.head(out).view(*x_t.shape[:-1], self.horizon, self.num_features)
        return y * self.scale + self.mean, state  # (B, horizon, F)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean squared error in standardised units."""
        return F.mse_loss((self(x) - self.mean) / self.scale, (y - self.mean) / self.scale)

    @torch.no_grad()
    def forecast(self, history: Tensor, steps: int) -> Tensor:
        """Predict `steps` values after `history` (T, B, F), feeding predictions back."""
        x, chunks = history, []
        while sum(c.shape[1] for c in chunks) < steps:
            y = self(x)  # (B, horizon, F)
            chunks.append(y)
            x = torch.cat([x, y.transpose(0, 1)])[-history.shape[0]:]
        return torch.cat(chunks, dim=1)[:, :steps]  # (B, steps, F)
