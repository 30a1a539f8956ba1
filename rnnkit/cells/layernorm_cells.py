"""LayerNormLSTMCell and LayerNormGRUCell: per-step layer normalisation (Ba et al. 2016)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import ParamSpec, RecurrentCell
from rnnkit.cells.gru_cell import GRUState
from rnnkit.cells.lstm_cell import LSTMState

__all__ = ["LayerNormLSTMCell", "LayerNormGRUCell", "LN_EPS"]

LN_EPS = 1e-5


def _ln(a: Tensor, gain: Tensor, shift: Tensor | None) -> Tensor:
    return F.layer_norm(a, a.shape[-1:], gain, shift, LN_EPS)


def _ln_specs(hidden_size: int, gates: int, bias: bool, cell_norm: bool) -> list[ParamSpec]:
    G = gates * hidden_size
    specs = [ParamSpec("ln_ih_weight", (G,)), ParamSpec("ln_hh_weight", (G,))]
    if cell_norm:
        specs.append(ParamSpec("ln_c_weight", (hidden_size,)))
    if bias:
        specs += [ParamSpec("ln_ih_bias", (G,), True), ParamSpec("ln_hh_bias", (G,), True)]
        if cell_norm:
            specs.append(ParamSpec("ln_c_bias", (hidden_size,), True))
    return specs


class _LayerNormCell(RecurrentCell):
    """Shared initialisation: weights as torch.nn, LayerNorm gains 1 and shifts 0."""

    @classmethod
    def init_params(cls, params: dict[str, Tensor], hidden_size: int, **options: Any) -> None:
        plain = {n: p for n, p in params.items() if not n.startswith("ln_")}
        super().init_params(plain, hidden_size)
        with torch.no_grad():
            for name, p in params.items():
                if name.startswith("ln_"):
                    p.fill_(1.0 if name.endswith("_weight") else 0.0)


class LayerNormLSTMCell(_LayerNormCell):
    """LSTM with layer normalisation of the input and recurrent pre-activations and of c.

    gates = LN(W x; g_x, b_x) + LN(U h; g_h, b_h) + b     (normalised over all 4H)
    i, f, o = sigmoid(...), g = tanh(...)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN(c_t; g_c, b_c))

    Parameters: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` as LSTMCell, plus LayerNorm gains
    `ln_ih_weight`, `ln_hh_weight` (4H,), `ln_c_weight` (H,) (init 1) and, with bias, shifts
    `ln_ih_bias`, `ln_hh_bias`, `ln_c_bias` (init 0).

    Example:
        >>> cell = LayerNormLSTMCell(3, 5)
        >>> tuple(cell(torch.randn(2, 3)).h.shape)
        (2, 5)
    """

    State = LSTMState
    gates = 4

    @classmethod
    def param_specs(cls, input_size: int, hidden_size: int, bias: bool) -> list[ParamSpec]:
        return super().param_specs(input_size, hidden_size, bias) + _ln_specs(
            hidden_size, 4, bias, cell_norm=True)

    @staticmethod
    def step(x: Tensor, state: LSTMState, params: Sequence[Tensor | None],
             h_drop: Tensor | None = None) -> LSTMState:
        w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, s_ih, s_hh, s_c = params
        h = state.h if h_drop is None else state.h * h_drop
        gates = _ln(F.linear(x, w_ih), g_ih, s_ih) + _ln(F.linear(h, w_hh), g_hh, s_hh)
        if b_ih is not None:
            gates = gates + b_ih + b_hh  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H)
        c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(_ln(c, g_c, s_c))
        return LSTMState(h, c)


class LayerNormGRUCell(_LayerNormCell):
    """GRU (torch.nn's convention) with layer normalisation of both pre-activations.

    a_x = LN(W x; g_x, b_x) + b_ih,   a_h = LN(U h; g_h, b_h) + b_hh    (each over 3H)
    r = sigmoid(a_x,r + a_h,r),  z = sigmoid(a_x,z + a_h,z)
    n = tanh(a_x,n + r * a_h,n)
    h_t = (1 - z) * n + z * h_{t-1}

    Example:
        >>> cell = LayerNormGRUCell(3, 5)
        >>> tuple(cell(torch.randn(2, 3)).shape)
        (2, 5)
    """

    State = GRUState
    gates = 3

    @classmethod
    def param_specs(cls, input_size: int, hidden_size: int, bias: bool) -> list[ParamSpec]:
        return super().param_specs(input_size, hidden_size, bias) + _ln_specs(
            hidden_size, 3, bias, cell_norm=False)

    @staticmethod
    def step(x: Tensor, state: GRUState, params: Sequence[Tensor | None],
             h_drop: Tensor | None = None) -> GRUState:
        w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, s_ih, s_hh = params
        h = state.h if h_drop is None else state.h * h_drop
        a_x = _ln(F.linear(x, w_ih), g_ih, s_ih)  # (B, 3H)
        a_h = _ln(F.linear(h, w_hh), g_hh, s_hh)  # (B, 3H)
        if b_ih is not None:
            a_x, a_h = a_x + b_ih, a_h + b_hh
        xr, xz, xn = a_x.chunk(3, dim=-1)
        hr, hz, hn = a_h.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return GRUState((1 - z) * n + z * state.h)
