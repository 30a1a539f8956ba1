"""LSTMCell: long short-term memory with a forget gate, torch.nn's gate order i, f, g, o."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.base import ParamSpec, RecurrentCell

__all__ = ["LSTMCell", "LSTMState"]


class LSTMState(NamedTuple):
    h: Tensor  # (B, H), or (B, P) with a projection
    c: Tensor  # (B, H)


class LSTMCell(RecurrentCell, nn.LSTMCell):
    """LSTM cell (Hochreiter & Schmidhuber 1997, forget gate of Gers et al. 2000).

    i, f, o = sigmoid(W_i x + U_i h + b_i), ...       (input, forget, output gates)
    g = tanh(W_g x + U_g h + b_g)                     (candidate)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                               (then h_t = W_hr h_t if proj_size > 0)

    Parameters are torch.nn.LSTMCell's: `weight_ih` (4H, I), `weight_hh` (4H, H), biases (4H,),
    gates stacked i, f, g, o. With `proj_size=P > 0` (as in torch.nn.LSTM), `weight_hr` (P, H)
    projects h and `weight_hh` is (4H, P).

    Shape: x (B, I) or (I,); state `LSTMState(h, c)`, each (B, H) or (H,).

    Example:
        >>> cell = LSTMCell(3, 5)
        >>> h, c = cell(torch.zeros(2, 3))
        >>> tuple(c.shape)
        (2, 5)
    """

    State = LSTMState
    gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
        proj_size: int = 0,
    ) -> None:
        if not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
            raise ValueError(
                f"proj_size must be an int in [0, hidden_size={hidden_size}), got {proj_size!r}"
            )
        options = {"proj_size": proj_size} if proj_size else {}
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype, **options)

    @classmethod
    def param_specs(
        cls, input_size: int, hidden_size: int, bias: bool, proj_size: int = 0
    ) -> list[ParamSpec]:
        G, R = 4 * hidden_size, proj_size or hidden_size
        specs = [ParamSpec("weight_ih", (G, input_size)), ParamSpec("weight_hh", (G, R))]
        if bias:
            specs += [ParamSpec("bias_ih", (G,), True), ParamSpec("bias_hh", (G,), True)]
        if proj_size:
            specs.append(ParamSpec("weight_hr", (proj_size, hidden_size)))
        return specs

    @classmethod
    def state_sizes(cls, hidden_size: int, proj_size: int = 0) -> tuple[int, ...]:
        return (proj_size or hidden_size, hidden_size)

    @staticmethod
    def step(
        x: Tensor, state: LSTMState, params: Sequence[Tensor | None], proj_size: int = 0,
        h_drop: Tensor | None = None,
    ) -> LSTMState:
        w_ih, w_hh, b_ih, b_hh = params[:4]
        h = state.h if h_drop is None else state.h * h_drop
        gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H)
        c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if proj_size:
            h = F.linear(h, params[4])  # (B, P)
        return LSTMState(h, c)
