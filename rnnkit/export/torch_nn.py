"""torch.nn twins of rnnkit's standard layers and cells, `to_torch_nn` for whole models, and
`quantize_dynamic` through them."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rnnkit.cells.base import RecurrentCell
from rnnkit.layers._torch_path import supports_torch
from rnnkit.layers.base import RecurrentLayer

__all__ = ["to_torch_nn", "torch_twin", "torch_cell_twin", "quantize_dynamic"]

_CLASSES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN}


def torch_twin(layer: RecurrentLayer, share: bool = False) -> nn.Module:
    """A torch.nn.RNN/LSTM/GRU with `layer`'s configuration and parameters: copies, or with
    `share=True` the very same Parameter objects (what torch.jit.script compiles).

    Raises ValueError for layers torch.nn has no equivalent of (the cell variants, recurrent
    dropout, zoneout).
    """
    if not supports_torch(layer) or layer.recurrent_dropout or any(layer.zoneout):
        raise ValueError(f"{type(layer).__name__} (mode {layer.mode!r}) has no torch.nn "
                         "equivalent; only plain RNN/LSTM/GRU layers without recurrent dropout "
                         "or zoneout convert")
    p = next(layer.parameters())
    kwargs: dict[str, Any] = {
        "num_layers": layer.num_layers, "bias": layer.bias, "batch_first": layer.batch_first,
        "dropout": layer.dropout, "bidirectional": layer.bidirectional,
        "device": "meta" if share else p.device, "dtype": p.dtype}
    if layer.mode.startswith("RNN"):
        kwargs["nonlinearity"] = layer.mode[4:].lower()
    if layer.proj_size:
        kwargs["proj_size"] = layer.proj_size
    twin = _CLASSES[layer.mode](layer.input_size, layer.hidden_size, **kwargs)
    _take_parameters(twin, layer, share)
    twin.train(layer.training)
    return twin


def torch_cell_twin(cell: RecurrentCell, share: bool = True) -> nn.Module:
    """torch.nn.RNNCell/LSTMCell/GRUCell with `cell`'s parameters (shared by default).

    Raises ValueError for the variant cells, which torch.nn does not have.
    """
    from rnnkit.cells import GRUCell, LSTMCell, RNNCell
    from rnnkit.layers import cells as fused

    classes = {RNNCell: nn.RNNCell, LSTMCell: nn.LSTMCell, GRUCell: nn.GRUCell,
               fused.RNNCell: nn.RNNCell, fused.LSTMCell: nn.LSTMCell, fused.GRUCell: nn.GRUCell}
    cls = classes.get(type(cell))
    if cls is None:
        raise ValueError(f"{type(cell).__name__} has no torch.nn equivalent (torch.jit.script "
                         "and torch.nn conversion take RNNCell, LSTMCell and GRUCell); run it "
                         "in eager mode or with torch.compile")
    p = next(cell.parameters())
    kwargs: dict[str, Any] = {"bias": cell.bias, "device": "meta" if share else p.device,
                              "dtype": p.dtype}
    if cls is nn.RNNCell:
        kwargs["nonlinearity"] = cell.options["nonlinearity"]
    twin = cls(cell.input_size, cell.hidden_size, **kwargs)
    _take_parameters(twin, cell, share)
    twin.train(cell.training)
    return twin


def _take_parameters(twin: nn.Module, source: nn.Module, share: bool) -> None:
    if not share:
        twin.load_state_dict(source.state_dict())
        return
    for name, param in source.named_parameters():
        twin.register_parameter(name, param)
    if isinstance(twin, nn.RNNBase):
        twin._init_flat_weights()


def to_torch_nn(module: nn.Module) -> nn.Module:
    """A deep copy of `module` in which every rnnkit RNN/LSTM/GRU layer is a torch.nn one.

    The copy computes the same function (torch.nn's kernels, same weights) and exports with
    `torch.onnx.export` to ONNX's own RNN/LSTM/GRU operators. A module that is itself an
    rnnkit layer comes back as the torch.nn layer. Parents call their layers as
    `layer(x, hx)`; the rnnkit-only `lengths=` keyword does not survive the conversion.
    The standard cells (RNNCell, LSTMCell, GRUCell) become torch.nn's cells.
    """
    if isinstance(module, RecurrentLayer):
        return torch_twin(module)
    if isinstance(module, RecurrentCell):
        return torch_cell_twin(module, share=False)
    result = copy.deepcopy(module)
    for name, child in list(result.named_modules()):
        if isinstance(child, (RecurrentLayer, RecurrentCell)):
            parent_name, _, attr = name.rpartition(".")
            parent = result.get_submodule(parent_name) if parent_name else result
            setattr(parent, attr, to_torch_nn(child))
    return result


def quantize_dynamic(model: nn.Module, dtype: torch.dtype = torch.qint8) -> nn.Module:
    """`torch.ao.quantization.quantize_dynamic` for a model holding rnnkit layers.

    torch's function matches modules by their exact class, so it leaves rnnkit's layers in
    float without a word; this converts them to their torch.nn twins first (`to_torch_nn`),
    then quantizes every RNN/LSTM/GRU (layers and cells) and Linear module. The result runs
    torch.nn's quantized kernels; `model` itself is left unchanged. (torch deprecates its
    eager-mode quantization in favour of torchao and warns about it.)
    """
    from torch.ao.quantization import quantize_dynamic as _quantize

    spec = {nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell, nn.Linear}
    return _quantize(to_torch_nn(model), spec, dtype=dtype)
