"""The one-crossing path of a layer call: a plain tensor through a one-layer RNN, LSTM or GRU
on the fused engine, straight from `forward` to the kernels.

A decoder, a sampler or a streaming forecaster calls its layer once per token, where the
general path's preparation (`_inputs.prepare`, the engine choice, the stack loop) costs more
than the step itself. This path reads the parameters from torch.nn's flat list, builds the
missing state, and leaves every check to the kernels (csrc/checks.h): when they refuse an input,
or anything here is out of the ordinary, the general path runs instead and raises its own,
more specific error. Both paths make the same kernel call, so they give the same results.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from rnnkit import engine as _engine
from rnnkit.engine.cells import CODES, LAYER_CELLS
from rnnkit.engine.fused_layer import _empty
from rnnkit.layers.stack import _reference_layer  # the twin, for gradients of gradients

__all__ = ["forward", "kernel_weights"]


def kernel_weights(layer: Any) -> list[Tensor] | None:
    """The flat weights the kernels take for `layer`, when one call of the layer kernels is
    all the layer computes (one plain layer with biases, nothing that changes its step), else
    None. Any module may be passed: only rnnkit's one-layer RNN, LSTM and GRU qualify."""
    if (getattr(layer, "_engine", None) not in ("auto", "fused") or layer.num_layers != 1
            or layer.mode not in LAYER_CELLS or not layer.bias or layer.proj_size
            or any(layer.zoneout) or (layer.training and layer.recurrent_dropout > 0)
            or "parametrizations" in layer._modules
            or torch.jit.is_tracing() or torch.compiler.is_exporting()):
        return None
    # torch.nn's list, kept current on assignment; None for other classes (IRNN, variants)
    return layer.__dict__.get("_flat_weights")


def forward(layer: Any, input: Tensor, hx: Any) -> tuple[Tensor, Any] | None:
    """`layer(input, hx)` for a time-major or batch-first 3-D `input`, or None when the
    general path must run (see the module docstring)."""
    if input.dim() != 3 or not input.is_cpu:
        return None
    flat = kernel_weights(layer)
    if flat is None:
        return None
    x = input.transpose(0, 1) if layer.batch_first else input  # (T, B, I)
    lstm = layer.mode == "LSTM"
    empty = _empty(x.dtype)
    if hx is None and not torch.is_grad_enabled():  # the kernels' zero state: empty h0, c0
        h0 = c0 = empty
    elif hx is None:
        shape = (layer.num_directions, x.shape[1], layer.hidden_size)
        h0 = x.new_zeros(shape)
        c0 = x.new_zeros(shape) if lstm else empty
    elif lstm:
        if type(hx) is not tuple or len(hx) != 2:
            return None
        h0, c0 = hx
    else:
        if not isinstance(hx, Tensor):
            return None
        h0, c0 = hx, empty
    if not isinstance(h0, Tensor) or not isinstance(c0, Tensor):
        return None
    try:
        res = _engine.fused_layer_flat(CODES[layer.mode], x, h0, c0, flat,
                                       functools.partial(_reference_layer, layer, None))
    except (ValueError, TypeError):
        return None
    if res is None:
        return None
    out, h_n, c_n = res
    if layer.batch_first:
        out = out.transpose(0, 1)
    return out, ((h_n, c_n) if lstm else h_n)
