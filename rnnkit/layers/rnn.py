"""rk.RNN, rk.LSTM, rk.GRU: drop-in replacements for torch.nn's sequence layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.cells.rnn_cell import _check_nonlinearity
from rnnkit.layers.base import RecurrentLayer

__all__ = ["RNN", "LSTM", "GRU"]


class RNN(RecurrentLayer, nn.RNN):
    """Elman RNN layer with torch.nn.RNN's arguments, parameters and results.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)   (or relu)

    Args: as torch.nn.RNN (input_size, hidden_size, num_layers=1, nonlinearity='tanh',
        bias=True, batch_first=False, dropout=0.0, bidirectional=False, device, dtype), plus
        `engine` ("auto" | "fused" | "reference" | "torch") and the keyword-only regularisers
        `recurrent_dropout` and `zoneout` (see `RecurrentLayer`).
        `forward(input, hx=None, *, lengths=None)`.

    Example:
        >>> rnn = RNN(3, 5, num_layers=2)
        >>> out, h = rnn(torch.randn(4, 2, 3))
        >>> tuple(out.shape), tuple(h.shape)
        ((4, 2, 5), (2, 2, 5))
    """

    cell_cls = RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        engine: str = "auto",
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        _check_nonlinearity(nonlinearity)
        super().__init__(
            RNNCell, "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            device, dtype, engine, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            nonlinearity=nonlinearity,
        )

    @property
    def nonlinearity(self) -> str:
        return self.cell_options["nonlinearity"]


class LSTM(RecurrentLayer, nn.LSTM):
    """LSTM layer with torch.nn.LSTM's arguments (proj_size included), parameters and results.

    Gates i, f, g, o as in `rnnkit.cells.LSTMCell`; hx and the final state are tuples (h, c).
    Extra keyword-only arguments: `forget_bias=1.0` sets the forget-gate bias
    (`rnnkit.init.forget_bias_`); `chrono=T_max` uses chrono initialisation
    (`rnnkit.init.chrono_`, Tallec & Ollivier 2018); `recurrent_dropout` and `zoneout`
    (one rate, or (h, c) rates) as in `RecurrentLayer`.

    Example:
        >>> lstm = LSTM(3, 5, bidirectional=True)
        >>> out, (h, c) = lstm(torch.randn(4, 2, 3))
        >>> tuple(out.shape), tuple(c.shape)
        ((4, 2, 10), (2, 2, 5))
    """

    cell_cls = LSTMCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: torch.dtype | None = None,
        engine: str = "auto",
        *,
        forget_bias: float | None = None,
        chrono: float | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ) -> None:
        if not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(f"proj_size must be a non-negative int, got {proj_size!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size has to be smaller than hidden_size={hidden_size}, "
                             f"got {proj_size}")
        options = {"proj_size": proj_size} if proj_size else {}
        super().__init__(
            LSTMCell, "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, device, dtype, engine, _gate_init(forget_bias, chrono),
            recurrent_dropout=recurrent_dropout, zoneout=zoneout, **options,
        )


class GRU(RecurrentLayer, nn.GRU):
    """GRU layer with torch.nn.GRU's arguments, parameters (gates r, z, n) and results.

    `forget_bias=` and `chrono=` as for LSTM act on the update gate z (the gate that keeps
    the old state in torch.nn's convention).

    Example:
        >>> gru = GRU(3, 5, batch_first=True)
        >>> out, h = gru(torch.randn(2, 4, 3))
        >>> tuple(out.shape)
        (2, 4, 5)
    """

    cell_cls = GRUCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        engine: str = "auto",
        *,
        forget_bias: float | None = None,
        chrono: float | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__(
            GRUCell, "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, device, dtype, engine, _gate_init(forget_bias, chrono),
            recurrent_dropout=recurrent_dropout, zoneout=zoneout,
        )


def _gate_init(forget_bias: float | None, chrono: float | None
               ) -> tuple[str, dict[str, float]] | None:
    """The gate initialiser as `(name in rnnkit.init, kwargs)`: plain data, so the layer pickles
    without references to functions."""
    if forget_bias is not None and chrono is not None:
        raise ValueError(f"give forget_bias or chrono, not both (got forget_bias={forget_bias}, "
                         f"chrono={chrono})")
    if forget_bias is not None:
        return ("forget_bias_", {"value": float(forget_bias)})
    if chrono is not None:
        return ("chrono_", {"t_max": chrono})
    return None
