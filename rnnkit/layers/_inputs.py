"""Input handling for sequence layers: validation, layouts, PackedSequence and unbatched input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells.base import describe

__all__ = ["check_config", "prepare", "Prepared"]


def check_config(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")


@dataclass
class Prepared:
    """A layer's input in the engine's form, and how to give results back in the caller's."""

    x: Tensor  # (T, B, I)
    state: tuple[Tensor, ...]  # each (L*D, B, H)
    lengths: Tensor | None  # (B,) int64 on CPU, or None when every sequence is full length
    batch_first: bool
    unbatched: bool
    packed: PackedSequence | None
    tuple_state: bool

    def restore(self, out: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Any]:
        if self.packed is not None:
            p = self.packed
            order = p.sorted_indices
            if order is not None:
                out = out.index_select(1, order)
            if self.lengths is None:  # every sequence has the full length
                lens = torch.full((out.shape[1],), out.shape[0], dtype=torch.int64)
            else:
                lens = self.lengths if order is None else self.lengths[order]
            data = pack_padded_sequence(out, lens, enforce_sorted=True).data
            result: Any = PackedSequence(data, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
        elif self.unbatched:
            result = out.squeeze(1)  # (T, D*H)
            state = tuple(s.squeeze(1) for s in state)
        else:
            result = out.transpose(0, 1) if self.batch_first else out
        return result, (state if self.tuple_state else state[0])


def prepare(layer: Any, input: Any, hx: Any, lengths: Any) -> Prepared:
    """Validate `input`, `hx` and `lengths` for `layer` and bring them to the (T, B, *) layout."""
    packed = None
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError("lengths= cannot be combined with a PackedSequence input, "
                             "which carries its own lengths")
        packed = input
        x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths in the caller's batch order
        batch_first = False
    elif isinstance(input, Tensor):
        x = input
        batch_first = layer.batch_first
    else:
        raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")

    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
    param = layer.layer_weights(0, 0)[0]
    if x.dtype != param.dtype:
        raise TypeError(f"input has dtype {x.dtype}, but the layer's parameters are "
                        f"{param.dtype}; convert one of them (e.g. layer.to({x.dtype}))")
    if x.dim() not in (2, 3):
        raise ValueError(f"input must be 3-D (batched) or 2-D (unbatched), got {x.dim()}-D "
                         f"with shape {tuple(x.shape)}")
    if x.shape[-1] != layer.input_size:
        raise ValueError(f"input has {x.shape[-1]} features per step, but the layer was built "
                         f"with input_size={layer.input_size}")
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(1)  # (T, 1, I)
    elif batch_first:
        x = x.transpose(0, 1)  # (T, B, I)
    T, B = x.shape[0], x.shape[1]
    if T == 0:
        raise ValueError("input has 0 time steps; expected at least 1")

    if lengths is not None:
        lengths = _check_lengths(lengths, B, T)
    field_sizes = layer.cell_cls.state_sizes(layer.hidden_size, **layer.cell_options)
    state, tuple_state = _state(layer, hx, field_sizes, B, unbatched, x)
    return Prepared(x, state, lengths, batch_first, unbatched, packed, tuple_state)


def _check_lengths(lengths: Any, B: int, T: int) -> Tensor | None:
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != B:
        raise ValueError(f"lengths must be a 1-D tensor with one length per sequence (B={B}), "
                         f"got shape {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    lengths = lengths.to("cpu", torch.int64)
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > T:
        raise ValueError(f"lengths must lie in [1, T={T}], got values from {lo} to {hi}")
    return None if lo == T else lengths


def _state(
    layer: Any, hx: Any, sizes: tuple[int, ...], B: int, unbatched: bool, x: Tensor
) -> tuple[tuple[Tensor, ...], bool]:
    LD = layer.num_layers * layer.num_directions
    tuple_state = len(sizes) > 1
    if hx is None:
        return tuple(x.new_zeros(LD, B, n) for n in sizes), tuple_state
    fields = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
    if len(fields) != len(sizes) or not all(isinstance(f, Tensor) for f in fields):
        kind = f"a tuple of {len(sizes)} tensors" if tuple_state else "a tensor"
        raise TypeError(f"hx must be {kind} for this layer, got {describe(hx)}")
    state = []
    for i, (f, n) in enumerate(zip(fields, sizes, strict=True)):
        name = f"hx[{i}]" if tuple_state else "hx"
        expected = (LD, n) if unbatched else (LD, B, n)
        if tuple(f.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} (num_layers * num_directions"
                             f"{'' if unbatched else ', batch'}, hidden), got {tuple(f.shape)}")
        if f.dtype != x.dtype:
            raise TypeError(f"{name} has dtype {f.dtype}, but input has dtype {x.dtype}")
        state.append(f.unsqueeze(1) if unbatched else f)
    return tuple(state), tuple_state
