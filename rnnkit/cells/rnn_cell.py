"""RNNCell: the vanilla (Elman) recurrent cell with tanh or ReLU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.base import RecurrentCell

__all__ = ["RNNCell", "RNNState", "NONLINEARITIES"]

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class RNNState(NamedTuple):
    h: Tensor  # (B, H)


class RNNCell(RecurrentCell, nn.RNNCell):
    """Vanilla RNN cell, torch.nn.RNNCell's parameters and initialisation.

    a_t = b_ih + W_ih x_t + b_hh + W_hh h_{t-1}
    h_t = tanh(a_t)   (or relu(a_t))

    Args:
        input_size: I.
        hidden_size: H.
        bias: whether `bias_ih`/`bias_hh` exist.
        nonlinearity: "tanh" or "relu".

    Shape: x (B, I) or (I,); hx (B, H) or (H,). `cell(x, hx)` returns the new h, as
    torch.nn.RNNCell; `cell.next_state(x, state)` returns `RNNState(h)`.

    Example:
        >>> cell = RNNCell(3, 5)
        >>> cell(torch.zeros(2, 3)).shape   # torch.nn.RNNCell returns the new h
        torch.Size([2, 5])
    """

    State = RNNState
    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_nonlinearity(nonlinearity)
        super().__init__(
            input_size, hidden_size, bias, device=device, dtype=dtype, nonlinearity=nonlinearity
        )

    @staticmethod
    def step(
        x: Tensor, state: RNNState, params: Sequence[Tensor | None], nonlinearity: str = "tanh",
        h_drop: Tensor | None = None,
    ) -> RNNState:
        w_ih, w_hh, b_ih, b_hh = params
        h = state.h if h_drop is None else state.h * h_drop
        a = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, H)
        return RNNState(NONLINEARITIES[nonlinearity](a))

    @property
    def nonlinearity(self) -> str:
        return self.options["nonlinearity"]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.options['nonlinearity']!r}"


def _check_nonlinearity(nonlinearity: str) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}"
        )
