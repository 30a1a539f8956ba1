"""Delegation of the standard layers to torch.nn's own kernels (cuDNN on CUDA)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["supports_torch", "run_torch"]

_MODES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN}


def supports_torch(layer: Any) -> bool:
    """True for the plain RNN/LSTM/GRU layers, whose math torch.nn implements: no recurrent
    dropout or zoneout, which torch.nn's kernels do not have (evaluation mode included, where
    zoneout still mixes the old state in)."""
    from rnnkit.cells import GRUCell, LSTMCell, RNNCell

    return (layer.mode in _MODES and layer.cell_cls in (RNNCell, LSTMCell, GRUCell)
            and not layer.recurrent_dropout and not any(layer.zoneout))


def run_torch(
    layer: Any, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run `layer`'s parameters through an equivalent torch.nn module (functional call)."""
    hx: Any = state if len(state) > 1 else state[0]
    inp: Any = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False)
    if torch.jit.is_tracing():
        # the tracer refuses torch.func's stateless calls: a twin holding the very same
        # Parameters (recorded as one aten::lstm / gru / rnn op)
        from rnnkit.export.torch_nn import torch_twin

        twin = torch_twin(layer, share=True)
        twin.batch_first = False  # x is time-major here
        out, final = twin(inp, hx)
    else:
        template = _template(layer)
        template.train(layer.training)
        params = dict(layer.named_parameters())
        out, final = torch.func.functional_call(template, params, (inp, hx))
    if lengths is not None:
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    return out, (tuple(final) if isinstance(final, tuple) else (final,))


def _template(layer: Any) -> nn.Module:
    """A parameterless torch.nn twin of `layer`, built once on the meta device."""
    cached = layer.__dict__.get("_torch_template")
    if cached is None:
        kwargs = {"num_layers": layer.num_layers, "bias": layer.bias, "dropout": layer.dropout,
                  "bidirectional": layer.bidirectional, "device": "meta"}
        if layer.mode.startswith("RNN"):
            kwargs["nonlinearity"] = layer.mode[4:].lower()
        if layer.proj_size:
            kwargs["proj_size"] = layer.proj_size
        cached = _MODES[layer.mode](layer.input_size, layer.hidden_size, **kwargs)
        layer.__dict__["_torch_template"] = cached  # not a submodule: no parameters of its own
    return cached
