"""LeakyRNNCell: leaky-integrator units, each with its own time constant."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import ParamSpec, RecurrentCell
from rnnkit.cells.rnn_cell import NONLINEARITIES, RNNState, _check_nonlinearity

__all__ = ["LeakyRNNCell"]


class LeakyRNNCell(RecurrentCell):
    """Leaky-integrator RNN: a running average of a vanilla RNN's proposals.

    v_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)      (or relu)
    h_t = (1 - a) * h_{t-1} + a * v_t,   a = sigmoid(rate_logit) in (0, 1), one per unit

    A unit with rate a remembers over about 1/a steps, so a spread of rates gives several time
    scales in one layer (the `mu_t = a mu_{t-1} + (1 - a) v_t` units of the lectures, with our
    `a` their `1 - a`).

    Args:
        rate: the leak rate of every unit, or a (low, high) pair to spread the rates
            log-uniformly over [low, high]; each in (0, 1].
        learn_rate: train the rates (through `rate_logit`) or keep them fixed.

    Example:
        >>> cell = LeakyRNNCell(3, 5, rate=(0.01, 1.0))
        >>> tuple(cell(torch.zeros(2, 3)).shape)
        (2, 5)
    """

    State = RNNState
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", rate: float | tuple[float, float] = 0.5,
                 learn_rate: bool = False, device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        check_rate(rate)
        _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype,
                         nonlinearity=nonlinearity, rate=rate)
        self.rate_logit.requires_grad_(learn_rate)

    @classmethod
    def param_specs(cls, input_size: int, hidden_size: int, bias: bool, **options: Any
                    ) -> list[ParamSpec]:
        return super().param_specs(input_size, hidden_size, bias) + [
            ParamSpec("rate_logit", (hidden_size,))]

    @classmethod
    def init_params(cls, params: dict[str, Tensor], hidden_size: int, rate: Any = 0.5,
                    **options: Any) -> None:
        rest = {n: p for n, p in params.items() if n != "rate_logit"}
        super().init_params(rest, hidden_size)
        with torch.no_grad():
            params["rate_logit"].copy_(torch.logit(rates(rate, hidden_size), eps=1e-6))

    @staticmethod
    def step(x: Tensor, state: RNNState, params: Sequence[Tensor | None],
             nonlinearity: str = "tanh", h_drop: Tensor | None = None, **_: Any) -> RNNState:
        w_ih, w_hh, b_ih, b_hh, rate_logit = params
        h = state.h if h_drop is None else state.h * h_drop
        v = NONLINEARITIES[nonlinearity](F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))
        a = torch.sigmoid(rate_logit)  # (H,)
        return RNNState(state.h + a * (v - state.h))  # (1 - a) h + a v


def rates(rate: float | tuple[float, float], n: int) -> Tensor:
    """n leak rates: all `rate`, or log-uniformly spaced over the (low, high) pair."""
    if isinstance(rate, (tuple, list)):
        low, high = rate
        return torch.logspace(math.log10(low), math.log10(high), n, dtype=torch.float64)
    return torch.full((n,), float(rate), dtype=torch.float64)


def check_rate(rate: Any) -> None:
    values = list(rate) if isinstance(rate, (tuple, list)) else [rate]
    if len(values) not in (1, 2) or not all(
        isinstance(v, (int, float)) and 0 < v <= 1 for v in values
    ):
        raise ValueError(f"rate must be a number in (0, 1] or a (low, high) pair of them, "
                         f"got {rate!r}")
