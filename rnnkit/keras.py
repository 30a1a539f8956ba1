"""Keras-style front ends: SimpleRNN, LSTM and GRU with Keras's arguments and return values.

`rk.keras.LSTM(units=64, input_dim=32, return_sequences=True)` builds an rnnkit layer (so it runs
on the fused engine) and answers like Keras: batch-major input (B, T, I), the last output or
all of them, and the states as a list when `return_state=True`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.layers import GRU as _GRU
from rnnkit.layers import LSTM as _LSTM
from rnnkit.layers import RNN as _RNN

__all__ = ["SimpleRNN", "LSTM", "GRU"]


class _KerasRNN(nn.Module):
    """Shared Keras behaviour around an rnnkit layer.

    Args:
        units: hidden size H.
        input_dim: features per step I (Keras infers it; here it is given).
        activation: the output nonlinearity ("tanh"; "relu" for SimpleRNN too).
        use_bias: bias vectors on or off.
        return_sequences: return every step's output (B, T, H) instead of the last (B, H).
        return_state: also return the final state(s), as `[output, *states]`.
        go_backwards: read each sequence from its end; outputs are in the order processed.
        dropout: input dropout with one mask per sequence, as Keras (training only).
        recurrent_dropout: dropout on h_{t-1} in the recurrent products, one mask per sequence.
        unroll: accepted for compatibility and ignored: rnnkit always runs a loop in the fused
            engine or the reference path, never a statically unrolled graph.
    """

    _layer: type
    _recurrent_activation = "sigmoid"

    def __init__(self, units: int, input_dim: int, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", use_bias: bool = True,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, **layer_kwargs: Any
                 ) -> None:
        super().__init__()
        if stateful:
            raise ValueError("stateful=True is not supported: pass the returned states back as "
                             "initial_state (return_state=True) to carry state across calls")
        if recurrent_activation != self._recurrent_activation:
            raise ValueError(f"recurrent_activation must be {self._recurrent_activation!r} "
                             f"(the gates of torch.nn-compatible cells), got "
                             f"{recurrent_activation!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.unroll, self.dropout = go_backwards, unroll, float(dropout)
        self.rnn = self._build(units, input_dim, activation, use_bias, recurrent_dropout,
                               **layer_kwargs)

    def _build(self, units: int, input_dim: int, activation: str, use_bias: bool,
               recurrent_dropout: float, **kwargs: Any) -> nn.Module:
        if activation != "tanh":
            raise ValueError(f"activation must be 'tanh' for {type(self).__name__}, got "
                             f"{activation!r}")
        return self._layer(input_dim, units, bias=use_bias, batch_first=True,
                           recurrent_dropout=recurrent_dropout, **kwargs)

    def forward(self, inputs: Tensor, initial_state: Any = None,
                lengths: Tensor | None = None) -> Tensor | list[Tensor]:
        """inputs (B, T, I); initial_state a list of (B, H) tensors; lengths (B,) optional."""
        if inputs.dim() != 3:
            raise ValueError(f"inputs must be (batch, time, features), got shape "
                             f"{tuple(inputs.shape)}")
        B, T = inputs.shape[:2]
        x = inputs
        if self.training and self.dropout > 0:
            keep = torch.full((B, 1, inputs.shape[-1]), 1 - self.dropout, dtype=x.dtype)
            x = x * torch.bernoulli(keep) / (1 - self.dropout)
        if self.go_backwards:
            x = x.gather(1, _reverse_index(B, T, lengths, x.shape[-1]))
        hx = None
        if initial_state is not None:
            states = [initial_state] if isinstance(initial_state, Tensor) else initial_state
            hx = tuple(s.unsqueeze(0) for s in states)
            hx = hx if len(hx) > 1 else hx[0]
        out, state = self.rnn(x, hx, lengths=lengths)
        states = [s[0] for s in (state if isinstance(state, tuple) else (state,))]
        result = out if self.return_sequences else states[0]
        return [result, *states] if self.return_state else result


def _reverse_index(B: int, T: int, lengths: Tensor | None, n: int) -> Tensor:
    """Index (B, T, n) reading each sequence backwards from its last valid step."""
    t = torch.arange(T).expand(B, T)
    if lengths is None:
        idx = T - 1 - t
    else:
        last = lengths.to(torch.int64).unsqueeze(1) - 1  # (B, 1)
        idx = torch.where(t <= last, last - t, t)
    return idx.unsqueeze(-1).expand(B, T, n)


class SimpleRNN(_KerasRNN):
    """Keras's SimpleRNN: `h_t = activation(W x_t + U h_{t-1} + b)`, activation tanh or relu.

    Example:
        >>> import torch
        >>> rnn = SimpleRNN(8, input_dim=3, return_sequences=True)
        >>> tuple(rnn(torch.randn(2, 5, 3)).shape)
        (2, 5, 8)
    """

    _layer = _RNN

    def _build(self, units: int, input_dim: int, activation: str, use_bias: bool,
               recurrent_dropout: float, **kwargs: Any) -> nn.Module:
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        return _RNN(input_dim, units, nonlinearity=activation, bias=use_bias, batch_first=True,
                    recurrent_dropout=recurrent_dropout, **kwargs)


class LSTM(_KerasRNN):
    """Keras's LSTM (gates i, f, c, o); `return_state=True` gives `[output, h, c]`.

    `unit_forget_bias=True` (Keras's default) sets the forget-gate bias to 1.

    Example:
        >>> import torch
        >>> out, h, c = LSTM(4, input_dim=3, return_state=True)(torch.randn(2, 5, 3))
        >>> bool(torch.equal(out, h))
        True
    """

    _layer = _LSTM

    def __init__(self, units: int, input_dim: int, unit_forget_bias: bool = True,
                 **kwargs: Any) -> None:
        if unit_forget_bias and kwargs.get("use_bias", True):
            kwargs["forget_bias"] = 1.0
        super().__init__(units, input_dim, **kwargs)


class GRU(_KerasRNN):
    """Keras's GRU with `reset_after=True` (its default, and torch.nn's equations).

    Keras writes h_t = z * h_{t-1} + (1 - z) * h~, the same convention as torch.nn.
    """

    _layer = _GRU

    def __init__(self, units: int, input_dim: int, reset_after: bool = True,
                 **kwargs: Any) -> None:
        if not reset_after:
            raise ValueError("reset_after=False (reset gate before the matrix product) is not "
                             "supported; rnnkit's GRU is the reset_after=True form")
        super().__init__(units, input_dim, **kwargs)
