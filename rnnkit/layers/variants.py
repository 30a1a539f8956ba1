"""Sequence layers for the cell variants: IRNN, peephole and LayerNorm LSTM, LayerNorm GRU,
leaky-integrator and skip-connection RNNs. Each is a RecurrentLayer over its cell."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rnnkit.cells.layernorm_cells import LayerNormGRUCell, LayerNormLSTMCell
from rnnkit.cells.leaky_rnn_cell import LeakyRNNCell, check_rate
from rnnkit.cells.peephole_lstm_cell import PeepholeLSTMCell
from rnnkit.cells.rnn_cell import RNNCell, _check_nonlinearity
from rnnkit.cells.skip_rnn_cell import SkipRNNCell, check_delays
from rnnkit.layers.base import RecurrentLayer

__all__ = ["IRNN", "PeepholeLSTM", "LayerNormLSTM", "LayerNormGRU", "LeakyRNN", "SkipRNN"]

_COMMON = ("num_layers", "bias", "batch_first", "dropout", "bidirectional", "device", "dtype",
           "engine", "recurrent_dropout", "zoneout")


def _common(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = set(kwargs) - set(_COMMON)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}; expected any of "
                        f"{list(_COMMON)}")
    return kwargs


class IRNN(RecurrentLayer):
    """ReLU RNN with identity-initialised recurrence (Le, Jaitly & Hinton 2015).

    W_hh = scale * I, biases 0, W_ih ~ N(0, input_std^2); otherwise `rk.RNN(...,
    nonlinearity="relu")`, with the same parameters and the fused RNN_RELU kernels.

    Example:
        >>> import torch
        >>> irnn = IRNN(3, 5)
        >>> bool((irnn.weight_hh_l0 == torch.eye(5)).all())
        True
    """

    cell_cls = RNNCell

    def __init__(self, input_size: int, hidden_size: int, *, scale: float = 1.0,
                 input_std: float = 0.001, **kwargs: Any) -> None:
        init = ("identity_", {"scale": scale, "input_std": input_std})
        super().__init__(RNNCell, "RNN_RELU", input_size, hidden_size, **_common(kwargs),
                         initializer=init, nonlinearity="relu")


class PeepholeLSTM(RecurrentLayer):
    """LSTM layer whose gates see the cell state (`rnnkit.cells.PeepholeLSTMCell`).

    Parameters: torch.nn.LSTM's plus `weight_peephole_l{k}` (3, H) per layer and direction.
    """

    cell_cls = PeepholeLSTMCell

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        super().__init__(PeepholeLSTMCell, "LSTM_PEEPHOLE", input_size, hidden_size,
                         **_common(kwargs))


class LayerNormLSTM(RecurrentLayer):
    """LSTM layer with per-step layer normalisation (`rnnkit.cells.LayerNormLSTMCell`)."""

    cell_cls = LayerNormLSTMCell

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        super().__init__(LayerNormLSTMCell, "LSTM_LN", input_size, hidden_size, **_common(kwargs))


class LayerNormGRU(RecurrentLayer):
    """GRU layer with per-step layer normalisation (`rnnkit.cells.LayerNormGRUCell`)."""

    cell_cls = LayerNormGRUCell

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        super().__init__(LayerNormGRUCell, "GRU_LN", input_size, hidden_size, **_common(kwargs))


class LeakyRNN(RecurrentLayer):
    """Layer of leaky-integrator units (`rnnkit.cells.LeakyRNNCell`).

    Args:
        rate: leak rate of every unit, or (low, high) to spread rates log-uniformly.
        learn_rate: train the rates (`rate_logit_l{k}`) by gradient, or keep them fixed.
        nonlinearity: "tanh" or "relu".

    Example:
        >>> import torch
        >>> layer = LeakyRNN(3, 5, rate=(0.01, 1.0), learn_rate=True)
        >>> tuple(layer(torch.randn(4, 2, 3))[0].shape)
        (4, 2, 5)
    """

    cell_cls = LeakyRNNCell

    def __init__(self, input_size: int, hidden_size: int, *,
                 rate: float | tuple[float, float] = 0.5, learn_rate: bool = False,
                 nonlinearity: str = "tanh", **kwargs: Any) -> None:
        check_rate(rate)
        _check_nonlinearity(nonlinearity)
        super().__init__(LeakyRNNCell, "RNN_LEAKY", input_size, hidden_size, **_common(kwargs),
                         nonlinearity=nonlinearity, rate=rate)
        for name, p in self.named_parameters():
            if name.startswith("rate_logit"):
                p.requires_grad_(learn_rate)


class SkipRNN(RecurrentLayer):
    """RNN layer with skip connections through time (`rnnkit.cells.SkipRNNCell`).

    The state is a tuple (h, past) like an LSTM's (h, c): past (L*D, B, (K-1)*H) holds the
    K-1 states before h, K the longest delay.

    Example:
        >>> import torch
        >>> layer = SkipRNN(3, 5, delays=(1, 3))
        >>> out, (h, past) = layer(torch.randn(6, 2, 3))
        >>> tuple(past.shape)
        (1, 2, 10)
    """

    cell_cls = SkipRNNCell

    def __init__(self, input_size: int, hidden_size: int, *, delays: Sequence[int] = (1, 2),
                 nonlinearity: str = "tanh", **kwargs: Any) -> None:
        _check_nonlinearity(nonlinearity)
        super().__init__(SkipRNNCell, "RNN_SKIP", input_size, hidden_size, **_common(kwargs),
                         nonlinearity=nonlinearity, delays=check_delays(delays))
