"""make_rnn: build a stacked RNN / LSTM / GRU layer from rnnkit.layers or torch.nn;
run_rnn: call either on a padded batch with its lengths."""

from __future__ import annotations

import importlib
from typing import Any

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["make_rnn", "run_rnn", "CELLS", "BACKENDS", "rnnkit_layers_available"]

CELLS = ("lstm", "gru", "rnn")
BACKENDS = ("auto", "rnnkit", "torch")
_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def rnnkit_layers_available() -> bool:
    """True when `rnnkit.layers` provides the LSTM / GRU / RNN layers."""
    try:
        layers = importlib.import_module("rnnkit.layers")
    except ImportError:
        return False
    return all(hasattr(layers, c) for c in _CLASS.values())


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
             dropout: float = 0.0, backend: str = "auto", **kwargs) -> nn.Module:
    """A stacked recurrent layer with torch.nn's contract, `(T, B, I)` layout.

    Args:
        cell: "lstm", "gru" or "rnn" (tanh).
        backend: "rnnkit" (rnnkit.layers, fused CPU engine), "torch" (torch.nn), or "auto"
            (rnnkit when rnnkit.layers is installed, else torch). Both take the same arguments
            and hold the same parameters, so their state dicts interchange.
        kwargs: passed on to the layer (e.g. `engine="reference"` for the rnnkit backend).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "rnnkit" if rnnkit_layers_available() else "torch"
    if backend == "rnnkit":
        if not rnnkit_layers_available():
            raise RuntimeError("backend='rnnkit' needs rnnkit.layers, which is not available "
                               "in this install; use backend='torch'")
        module = importlib.import_module("rnnkit.layers")
    else:
        module = nn
    cls = getattr(module, _CLASS[cell])
    return cls(input_size, hidden_size, num_layers=num_layers,
               dropout=dropout if num_layers > 1 else 0.0, **kwargs)


def run_rnn(rnn: nn.Module, x: Tensor, state: Any = None,
            lengths: Tensor | None = None) -> tuple[Tensor, Any]:
    """`rnn(x, state)` on a padded time-major batch x (T, B, I) whose sequence b holds
    `lengths[b]` steps: rnnkit's layers take the lengths directly (masked in the kernel);
    torch.nn's layers get a packed sequence and return outputs padded back to T steps (zeros
    past each length). Either way the final state is each sequence's state at its own end."""
    if lengths is None:
        return rnn(x, state)
    if isinstance(rnn, nn.RNNBase):
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        out, state = rnn(packed, state)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return out, state
    return rnn(x, state, lengths=lengths)
