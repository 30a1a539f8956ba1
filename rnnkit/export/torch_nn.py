"""to_torch_nn: the same model with every standard rnnkit layer replaced by its torch.nn twin."""

from __future__ import annotations

import copy

from torch import nn

from rnnkit.layers._torch_path import supports_torch
from rnnkit.layers.base import RecurrentLayer

__all__ = ["to_torch_nn", "torch_twin"]

_CLASSES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN}


def torch_twin(layer: RecurrentLayer) -> nn.Module:
    """A torch.nn.RNN/LSTM/GRU with `layer`'s configuration and (copied) parameters.

    Raises ValueError for layers torch.nn has no equivalent of (the cell variants).
    """
    if not supports_torch(layer) or layer.recurrent_dropout or any(layer.zoneout):
        raise ValueError(f"{type(layer).__name__} (mode {layer.mode!r}) has no torch.nn "
                         "equivalent; only plain RNN/LSTM/GRU layers without recurrent dropout "
                         "or zoneout convert")
    p = next(layer.parameters())
    kwargs = {"num_layers": layer.num_layers, "bias": layer.bias,
              "batch_first": layer.batch_first, "dropout": layer.dropout,
              "bidirectional": layer.bidirectional, "device": p.device, "dtype": p.dtype}
    if layer.mode.startswith("RNN"):
        kwargs["nonlinearity"] = layer.mode[4:].lower()
    if layer.proj_size:
        kwargs["proj_size"] = layer.proj_size
    twin = _CLASSES[layer.mode](layer.input_size, layer.hidden_size, **kwargs)
    twin.load_state_dict(layer.state_dict())
    twin.train(layer.training)
    return twin


def to_torch_nn(module: nn.Module) -> nn.Module:
    """A deep copy of `module` in which every rnnkit RNN/LSTM/GRU layer is a torch.nn one.

    The copy computes the same function (torch.nn's kernels, same weights) and exports with
    `torch.onnx.export` to ONNX's own RNN/LSTM/GRU operators. A module that is itself an
    rnnkit layer comes back as the torch.nn layer. Parents call their layers as
    `layer(x, hx)`; the rnnkit-only `lengths=` keyword does not survive the conversion.
    """
    if isinstance(module, RecurrentLayer):
        return torch_twin(module)
    result = copy.deepcopy(module)
    for name, child in list(result.named_modules()):
        if isinstance(child, RecurrentLayer):
            parent_name, _, attr = name.rpartition(".")
            parent = result.get_submodule(parent_name) if parent_name else result
            setattr(parent, attr, torch_twin(child))
    return result
