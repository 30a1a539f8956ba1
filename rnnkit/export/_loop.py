"""One direction of one recurrent layer as a graph loop: a cell's own `step`, traced once, run
by a TorchScript loop that the ONNX exporter turns into an ONNX `Loop` over the time axis.

The time loop is scripted (so its trip count is the input's length, not the example's) and the
step inside it is traced from the cell class's `step` (so every cell of the protocol exports with
its own equations, the single source of truth). Lengths enter as a mask: a sequence's state stops
changing after its last valid step and its outputs there are zero, as `rnnkit.layers.unroll`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["make_loop", "flat_parameters"]


def flat_parameters(params: Sequence[Tensor | None]) -> Tensor:
    """The parameters of one layer and direction side by side in one vector (None skipped)."""
    return torch.cat([p.detach().reshape(-1) for p in params if p is not None])


def make_loop(cell_cls: Any, params: Sequence[Tensor | None], options: dict[str, Any],
              sizes: Sequence[int], zoneout: Sequence[float]) -> Callable[..., Any]:
    """A scripted `loop(x, state, valid, flat) -> (out, state)` for one layer and direction.

    Args:
        cell_cls: the cell class whose static `step(x, state, params, **options)` is traced.
        params: its parameters in `step` order (None: absent bias); only their shapes are used,
            the values come in as `flat` (`flat_parameters(params)`) when the loop runs.
        options: the cell's options (nonlinearity, delays, proj_size, ...).
        sizes: the width of each state field.
        zoneout: one rate per state field; evaluation's expectation p * old + (1 - p) * new.

    Shape: x (T, B, I), state (B, sum(sizes)) the fields side by side, valid (T, B, 1) bool,
    flat (P,) -> out (T, B, sizes[0]) and the final state (B, sum(sizes)).
    """
    shapes = [None if p is None else tuple(p.shape) for p in params]
    sizes, rates = list(sizes), list(zoneout)

    def step(x: Tensor, state: Tensor, flat: Tensor) -> tuple[Tensor, Tensor]:
        ps: list[Tensor | None] = []
        at = 0
        for shape in shapes:
            if shape is None:
                ps.append(None)
                continue
            n = math.prod(shape)
            ps.append(flat[at:at + n].view(shape))
            at += n
        old = state.split(sizes, dim=-1)  # one (B, n) per field
        new = list(cell_cls.step(x, cell_cls.State(*old), ps, **options))
        new = [z * o + (1 - z) * n if z > 0 else n for z, o, n in zip(rates, old, new,
                                                                          strict=True)]
        return torch.cat(new, dim=-1), new[0]  # (B, sum(sizes)), (B, sizes[0])

    p0 = next(p for p in params if p is not None)
    example = (torch.zeros(2, shapes[0][1], dtype=p0.dtype),
               torch.zeros(2, sum(sizes), dtype=p0.dtype), flat_parameters(params))
    with warnings.catch_warnings():
        # torch deprecates TorchScript; its ONNX exporter is still the one that writes loops
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        # the step's Python-level loops run over parameter rows and state fields, whose
        # counts are fixed by the layer, never by B or T
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(step, example, check_trace=False)
        _fold_feature_sizes(traced.graph)

    def loop(x: Tensor, state: Tensor, valid: Tensor, flat: Tensor) -> tuple[Tensor, Tensor]:
        outs: list[Tensor] = []
        for t in range(x.size(0)):
            new, h = traced(x[t], state, flat)
            keep = valid[t]  # (B, 1)
            state = torch.where(keep, new, state)
            outs.append(torch.where(keep, h, torch.zeros_like(h)))
        return torch.stack(outs), state

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        return torch.jit.script(loop)


def _fold_feature_sizes(graph: torch._C.Graph) -> None:
    """Replace the traced sizes of feature axes by constants.

    Tracing records `a.shape[-1]` as a size lookup; ONNX needs some of them static (LayerNorm's
    normalized shape), and inside a loop body the exporter cannot prove them so. Every tensor in
    a cell's step is (B, features) or a parameter, so every axis but the batch axis (axis 0 of a
    tensor with two or more axes) has the width seen while tracing, whatever B and T are.
    """
    for node in list(graph.nodes()):
        if node.kind() != "aten::size" or node.inputsSize() != 2:
            continue
        tensor, dim = node.inputs()
        kind = tensor.type()
        sizes = kind.sizes() if isinstance(kind, torch._C.TensorType) else None
        d = dim.toIValue()
        if sizes is None or not isinstance(d, int) or None in sizes:
            continue
        d %= len(sizes)
        if len(sizes) >= 2 and d == 0:
            continue  # the batch axis stays dynamic
        with graph.insert_point_guard(node):
            const = graph.insertConstant(sizes[d])
        node.output().replaceAllUsesWith(const)
    torch._C._jit_pass_dce(graph)
