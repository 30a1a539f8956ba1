"""GraphLayer: a recurrent layer in the form ONNX export records, lengths included, and
`for_export`, which puts one in place of every recurrent layer of a model.

The standard RNN / LSTM / GRU become ONNX's own operators (torch.nn's kernels, whose
PackedSequence path the exporter maps to the operators' `sequence_lens` input); everything else
(the variants, LSTM projections, zoneout's evaluation form) runs the cell's own equations in an
ONNX Loop (`rnnkit.export._loop`). Neither path needs the fused C++ engine.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.export._loop import flat_parameters, make_loop
from rnnkit.export.torch_nn import torch_twin
from rnnkit.layers._torch_path import supports_torch
from rnnkit.layers.base import RecurrentLayer

__all__ = ["GraphLayer", "for_export", "NOT_EXPORTABLE"]

#: Modules with no ONNX form over a dynamic time axis, and why (checked by class name so that
#: importing them is not needed).
NOT_EXPORTABLE = {
    "ChildSumTreeLSTM": "its recursion follows each input tree's structure",
    "BinaryTreeLSTM": "its recursion follows each input tree's structure",
    "TreeRNN": "its recursion follows each input tree's structure",
    "EchoStateNetwork": "its reservoir runs a Python loop over time that tracing would unroll",
}

_TORCH_CELLS = {"LSTM": (LSTMCell, {}), "GRU": (GRUCell, {}),
                "RNN_TANH": (RNNCell, {"nonlinearity": "tanh"}),
                "RNN_RELU": (RNNCell, {"nonlinearity": "relu"})}


class GraphLayer(nn.Module):
    """Computes what `layer` computes in evaluation mode, in operations ONNX export records.

    `forward(input, hx=None, *, lengths=None)` has the layer's contract (its layout, its state
    form): with `lengths`, outputs past each length are zero and the final state is the state at
    each sequence's own last step (the reverse direction starts there). `lengths` may be a
    graph input: nothing here depends on its values at export time. Input is batched
    ((T, B, I), or (B, T, I) with batch_first), as the task models give it.

    Args:
        layer: an rnnkit RecurrentLayer (any cell) or a torch.nn RNN / LSTM / GRU.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if isinstance(layer, RecurrentLayer):
            cell_cls, options = layer.cell_cls, dict(layer.cell_options)
            zoneout = tuple(layer.zoneout)
            native = supports_torch(layer) and not layer.proj_size
            weights = {(k, d): layer.layer_weights(k, d) for k in range(layer.num_layers)
                       for d in range(layer.num_directions)}
        elif isinstance(layer, nn.RNNBase) and layer.mode in _TORCH_CELLS:
            cell_cls, options = _TORCH_CELLS[layer.mode]
            options = dict(options, **({"proj_size": layer.proj_size} if layer.proj_size else {}))
            zoneout = (0.0,) * len(cell_cls.State._fields)
            native = not layer.proj_size
            weights = {(k, d): _torch_weights(layer, k, d) for k in range(layer.num_layers)
                       for d in range(2 if layer.bidirectional else 1)}
        else:
            raise TypeError(f"GraphLayer takes an rnnkit recurrent layer or a torch.nn RNN / "
                            f"LSTM / GRU, got {type(layer).__name__}")
        self.batch_first = layer.batch_first
        self.num_layers, self.hidden_size = layer.num_layers, layer.hidden_size
        self.bidirectional = layer.bidirectional
        self.num_directions = 2 if layer.bidirectional else 1
        self.sizes = tuple(cell_cls.state_sizes(layer.hidden_size, **options))
        self.fields = tuple(cell_cls.State._fields)  # the state's field names: h, c, past
        # onnxruntime's LSTM / GRU / RNN kernels take float32 only: other dtypes loop
        dtype = next(p for p in weights[0, 0] if p is not None).dtype
        self.native = native and dtype == torch.float32
        if self.native:
            twin = torch_twin(layer) if isinstance(layer, RecurrentLayer) else copy.deepcopy(layer)
            twin.batch_first = False  # this module hands it time-major input
            self.twin = twin.eval()
            return
        self.loops = {}
        for (k, d), params in weights.items():
            self.loops[k, d] = make_loop(cell_cls, params, options, self.sizes, zoneout)
            self.register_buffer(f"flat_l{k}_d{d}", flat_parameters(params))

    def forward(self, input: Tensor, hx: Any = None, *, lengths: Tensor | None = None
                ) -> tuple[Tensor, Any]:
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        if self.native:
            out, state = self._native(x, hx, lengths)
        else:
            out, state = self._loop(x, hx, lengths)
        out = out.transpose(0, 1) if self.batch_first else out
        return out, (tuple(state) if len(state) > 1 else state[0])

    def _native(self, x: Tensor, hx: Any, lengths: Tensor | None
                ) -> tuple[Tensor, tuple[Tensor, ...]]:
        if lengths is None:
            out, state = self.twin(x, hx)
            return out, (tuple(state) if isinstance(state, tuple) else (state,))
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, state = self.twin(packed, hx)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        # The exporter folds the packing into the operator's sequence_lens only where the
        # padded output is used; a caller that reads the final state alone would leave it
        # unused, so the state takes an empty slice of it (a sum of nothing: zero).
        nothing = out[:0].sum()
        fields = tuple(state) if isinstance(state, tuple) else (state,)
        return out, tuple(f + nothing for f in fields)

    def _loop(self, x: Tensor, hx: Any, lengths: Tensor | None
              ) -> tuple[Tensor, tuple[Tensor, ...]]:
        T, B = x.shape[0], x.shape[1]
        LD = self.num_layers * self.num_directions
        if hx is None:
            fields: tuple[Tensor, ...] = tuple(x.new_zeros(LD, B, n) for n in self.sizes)
        else:
            fields = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        if lengths is None:
            valid = torch.ones_like(x[:, :, :1], dtype=torch.bool)  # (T, B, 1)
        else:
            steps = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
            valid = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
        finals: list[Tensor] = []
        layer_input = x
        for k in range(self.num_layers):
            outputs = []
            for d in range(self.num_directions):
                index = k * self.num_directions + d
                start = torch.cat([f[index] for f in fields], dim=-1)  # (B, sum(sizes))
                flat = getattr(self, f"flat_l{k}_d{d}")
                if d == 0:
                    out, final = self.loops[k, d](layer_input, start, valid, flat)
                else:  # the reverse direction: each sequence from its own last step down
                    out, final = self.loops[k, d](layer_input.flip(0), start, valid.flip(0),
                                                  flat)
                    out = out.flip(0)
                outputs.append(out)  # (T, B, sizes[0])
                finals.append(final)
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        stacked = torch.stack(finals)  # (L*D, B, sum(sizes))
        return layer_input, tuple(stacked.split(list(self.sizes), dim=-1))


def _torch_weights(layer: nn.RNNBase, k: int, d: int) -> tuple[Tensor | None, ...]:
    """A torch.nn layer's parameters of layer k, direction d, in the rnnkit cell's order."""
    sfx = f"_l{k}{'_reverse' if d == 1 else ''}"
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    if layer.proj_size:
        names.append("weight_hr")
    return tuple(getattr(layer, n + sfx, None) for n in names)


def for_export(model: nn.Module) -> nn.Module:
    """An evaluation-mode deep copy of `model` in which every recurrent layer (rnnkit's or
    torch.nn's RNN / LSTM / GRU) is a GraphLayer; `model` itself is left unchanged.

    Raises:
        ValueError: the model holds a module with no ONNX form (named, with the reason).
    """
    for name, child in model.named_modules():
        reason = NOT_EXPORTABLE.get(type(child).__name__)
        if reason is not None:
            where = f"its {name!r}" if name else "the model"
            raise ValueError(f"cannot export {type(model).__name__} to ONNX: {where} is a "
                             f"{type(child).__name__}, and {reason}")
    if _is_layer(model):
        return GraphLayer(model).eval()
    result = copy.deepcopy(model).eval()
    for name, child in list(result.named_modules()):
        if name and _is_layer(child):
            parent_name, _, attr = name.rpartition(".")
            parent = result.get_submodule(parent_name) if parent_name else result
            setattr(parent, attr, GraphLayer(child).eval())
    return result


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, RecurrentLayer) or (
        isinstance(module, nn.RNNBase) and getattr(module, "mode", None) in _TORCH_CELLS)
