"""PeepholeLSTMCell: an LSTM whose gates also see the cell state through diagonal weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import ParamSpec
from rnnkit.cells.lstm_cell import LSTMCell, LSTMState

__all__ = ["PeepholeLSTMCell"]


class PeepholeLSTMCell(LSTMCell):
    """LSTM with peephole connections (Gers & Schmidhuber 2000).

    i = sigmoid(W_i x + U_i h + b_i + p_i * c_{t-1})
    f = sigmoid(W_f x + U_f h + b_f + p_f * c_{t-1})
    g = tanh(W_g x + U_g h + b_g)
    c_t = f * c_{t-1} + i * g
    o = sigmoid(W_o x + U_o h + b_o + p_o * c_t)
    h_t = o * tanh(c_t)

    Parameters: LSTMCell's plus `weight_peephole` (3, H), the rows p_i, p_f, p_o,
    initialised like the other weights.

    Example:
        >>> cell = PeepholeLSTMCell(3, 5)
        >>> tuple(cell(torch.zeros(2, 3)).c.shape)
        (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)

    @classmethod
    def param_specs(cls, input_size: int, hidden_size: int, bias: bool) -> list[ParamSpec]:
        specs = super().param_specs(input_size, hidden_size, bias)
        return specs + [ParamSpec("weight_peephole", (3, hidden_size))]

    @staticmethod
    def step(x: Tensor, state: LSTMState, params: Sequence[Tensor | None],
             h_drop: Tensor | None = None) -> LSTMState:
        w_ih, w_hh, b_ih, b_hh, w_p = params
        h = state.h if h_drop is None else state.h * h_drop
        gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H)
        p_i, p_f, p_o = w_p  # 3 x (H,)
        c = torch.sigmoid(f + p_f * state.c) * state.c + torch.sigmoid(i + p_i * state.c) * (
            torch.tanh(g)
        )
        h = torch.sigmoid(o + p_o * c) * torch.tanh(c)
        return LSTMState(h, c)
