"""SkipRNNCell: a recurrent cell that also reads its state from several steps back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import ParamSpec, RecurrentCell
from rnnkit.cells.rnn_cell import NONLINEARITIES, _check_nonlinearity

__all__ = ["SkipRNNCell", "SkipState"]


class SkipState(NamedTuple):
    h: Tensor  # (B, H), h_{t-1}
    past: Tensor  # (B, (K-1)*H): h_{t-2}, ..., h_{t-K} side by side, K the longest delay


class SkipRNNCell(RecurrentCell):
    """RNN with skip connections through time (delays > 1; several time scales at once).

    h_t = tanh(W_ih x_t + b_ih + b_hh + sum_{d in delays} W_hh^(d) h_{t-d})

    Gradients reach d steps back in one hop, so dependencies over T steps take T/d
    multiplications by a Jacobian instead of T. `delays=(1, 8)` mixes a fast and a slow path;
    `delays=(4,)` is a dilated RNN (four interleaved chains; stack layers with growing
    dilations for a hierarchy of time scales).

    Parameters: `weight_ih` (H, I), `weight_hh` (H, H) when 1 is a delay, `weight_hh_d{d}` (H, H)
    for every other delay d, and the biases.

    Example:
        >>> cell = SkipRNNCell(3, 5, delays=(1, 4))
        >>> tuple(cell.init_state(2).past.shape)   # h_{t-2}, h_{t-3}, h_{t-4}
        (2, 15)
    """

    State = SkipState
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", delays: Sequence[int] = (1, 2),
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        _check_nonlinearity(nonlinearity)
        delays = check_delays(delays)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype,
                         nonlinearity=nonlinearity, delays=delays)

    @classmethod
    def param_specs(cls, input_size: int, hidden_size: int, bias: bool,
                    delays: Sequence[int] = (1, 2), **options: Any) -> list[ParamSpec]:
        H = hidden_size
        specs = [ParamSpec("weight_ih", (H, input_size))]
        specs += [ParamSpec("weight_hh" if d == 1 else f"weight_hh_d{d}", (H, H)) for d in delays]
        if bias:
            specs += [ParamSpec("bias_ih", (H,), True), ParamSpec("bias_hh", (H,), True)]
        return specs

    @classmethod
    def state_sizes(cls, hidden_size: int, delays: Sequence[int] = (1, 2), **options: Any
                    ) -> tuple[int, ...]:
        return (hidden_size, (max(delays) - 1) * hidden_size)

    @staticmethod
    def step(x: Tensor, state: SkipState, params: Sequence[Tensor | None],
             nonlinearity: str = "tanh", delays: Sequence[int] = (1, 2),
             h_drop: Tensor | None = None) -> SkipState:
        w_ih, *w_delays = params[:1 + len(delays)]
        b_ih, b_hh = params[1 + len(delays):]
        H = state.h.shape[-1]
        history = [state.h, *state.past.split(H, dim=-1)]  # h_{t-1}, h_{t-2}, ... (B, H) each
        a = F.linear(x, w_ih, b_ih)  # (B, H)
        if b_hh is not None:
            a = a + b_hh
        for d, w in zip(delays, w_delays, strict=True):
            h = history[d - 1]
            a = a + F.linear(h if h_drop is None else h * h_drop, w)
        h = NONLINEARITIES[nonlinearity](a)
        if state.past.shape[-1] == 0:  # longest delay 1: nothing to remember
            return SkipState(h, state.past)
        return SkipState(h, torch.cat([state.h, state.past[..., :-H]], dim=-1))


def check_delays(delays: Any) -> tuple[int, ...]:
    try:
        values = tuple(sorted(set(delays)))
    except TypeError:
        values = ()
    if not values or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                             for d in values):
        raise ValueError(f"delays must be a non-empty sequence of ints >= 1, got {delays!r}")
    return values
