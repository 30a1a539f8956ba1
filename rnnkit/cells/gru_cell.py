"""GRUCell: gated recurrent unit (Cho et al. 2014) in torch.nn's convention, gates r, z, n."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.base import RecurrentCell

__all__ = ["GRUCell", "GRUState"]


class GRUState(NamedTuple):
    h: Tensor  # (B, H)


class GRUCell(RecurrentCell, nn.GRUCell):
    """GRU cell with torch.nn.GRUCell's parameters, gate order and equations.

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)            (reset gate)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)            (update gate)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))         (candidate)
    h_t = (1 - z) * n + z * h_{t-1}

    Cho et al. write h_t = (1 - z') h_{t-1} + z' h~ with z' the gate that admits the candidate;
    torch.nn's z is the gate that keeps the old state, so z = 1 - z'. We follow torch.nn so that
    weights interchange; the two parametrisations describe the same family of functions.
    The reset gate multiplies the recurrent product after the matrix (W_hn h + b_hn), which is
    torch.nn's (and cuDNN's) variant of Cho et al.'s W (r * h).

    Shape: x (B, I) or (I,); hx (B, H) or (H,). `cell(x, hx)` returns the new h, as
    torch.nn.GRUCell; `cell.next_state(x, state)` returns `GRUState(h)`.

    Example:
        >>> cell = GRUCell(3, 5)
        >>> cell(torch.zeros(2, 3)).shape   # torch.nn.GRUCell returns the new h
        torch.Size([2, 5])
    """

    State = GRUState
    gates = 3

    @staticmethod
    def step(x: Tensor, state: GRUState, params: Sequence[Tensor | None],
             h_drop: Tensor | None = None) -> GRUState:
        w_ih, w_hh, b_ih, b_hh = params
        h = state.h if h_drop is None else state.h * h_drop
        xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)  # 3 x (B, H)
        hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)  # 3 x (B, H)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return GRUState((1 - z) * n + z * state.h)
