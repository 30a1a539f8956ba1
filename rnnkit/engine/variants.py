"""The fused path of the cell variants: which layers it runs, and the whole stack run through it.

It runs the peephole and LayerNorm LSTM, the LayerNorm GRU, the leaky and skip RNNs, and the
standard RNN/LSTM/GRU (and IRNN) when recurrent dropout or zoneout is on, with exactly the reference
stack's semantics: the same regulariser masks, drawn in the same order (per layer, per
direction, before running it), and inter-layer dropout after every layer but the last.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.engine._checks import input_problem
from rnnkit.engine.variant_build import load_variants, variants_build_error
from rnnkit.engine.variant_functions import skip_direction, variant_direction
from rnnkit.layers import _regularisers

__all__ = ["MODES", "handles", "runs_regularised_standard", "unsupported_reason",
           "run_stack"]

# Modes with no kernel in the standard fused engine, and the standard ones (run here only when
# recurrent dropout or zoneout is on). Codes shared with csrc/variants.cpp (enum Cell).
_VARIANT_CODES = {"LSTM_PEEPHOLE": 4, "LSTM_LN": 5, "GRU_LN": 6, "RNN_LEAKY": 7, "RNN_SKIP": -1}
_STANDARD_CODES = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}
MODES = set(_VARIANT_CODES) | set(_STANDARD_CODES)
_LSTM_FAMILY = {"LSTM", "LSTM_PEEPHOLE", "LSTM_LN"}


def _regularised(layer: Any) -> bool:
    return any(layer.zoneout) or (layer.training and layer.recurrent_dropout > 0)


def handles(layer: Any) -> bool:
    """True for the layers that `RecurrentLayer._run` sends here: the variant modes, and the
    standard RNN/LSTM/GRU when recurrent dropout (in training) or zoneout is on."""
    return layer.mode in _VARIANT_CODES or runs_regularised_standard(layer)


def runs_regularised_standard(layer: Any) -> bool:
    """True for a standard RNN/LSTM/GRU layer whose regularisers `run_stack` can run fused."""
    return layer.mode in _STANDARD_CODES and _regularised(layer)


def _code(layer: Any) -> int:
    if layer.mode == "RNN_LEAKY" and layer.cell_options.get("nonlinearity", "tanh") == "relu":
        return 8
    return {**_VARIANT_CODES, **_STANDARD_CODES}[layer.mode]


def unsupported_reason(layer: Any, x: Tensor) -> str | None:
    """Why the fused variant kernels cannot run `layer` on `x`, or None if they can."""
    problem = input_problem(layer, x, MODES, "fused variant kernel")
    if problem is not None:
        return problem
    if load_variants() is None:
        return variants_build_error()
    return None


def run_stack(layer: Any, x: Tensor, state: tuple[Tensor, ...],
              lengths: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Every layer and direction of `layer` through the fused variant kernels.

    Shape: x (T, B, I) time-major, state ((L*D, B, H),) or (h, c) for the LSTM family,
    lengths (B,) int64 or None -> out (T, B, D*H), zero past each length, and the final state
    with the structure of `state`.
    """
    T, B = x.shape[0], x.shape[1]  # the layer has just checked `unsupported_reason`
    D = layer.num_directions
    code = _code(layer)  # -1 for the skip RNN, which has its own entry point
    two_fields = layer.mode in _LSTM_FAMILY or layer.mode == "RNN_SKIP"
    relu = layer.cell_options.get("nonlinearity", "tanh") == "relu"
    finals: list[list[Tensor]] = [[] for _ in state]
    out = x
    for k in range(layer.num_layers):
        outputs = []
        for d in range(D):
            index = k * D + d
            h_drop, zone = _regularisers.masks(layer, T, B, x)  # the reference's draw order
            config = (layer, lengths, d == 1, h_drop, zone)
            if layer.mode == "RNN_SKIP":  # the second state field is `past`, not c
                o, h_n, c_n = skip_direction(
                    layer.cell_options["delays"], relu, out, state[0][index], state[1][index],
                    layer.layer_weights(k, d), lengths, d == 1, h_drop, zone,
                    functools.partial(_skip_reference, *config))
            else:
                twin = functools.partial(_reference, *config)
                o, h_n, c_n = variant_direction(
                    code, out, state[0][index], state[1][index] if two_fields else None,
                    layer.layer_weights(k, d), lengths, d == 1, h_drop, zone, twin)
            outputs.append(o)  # (T, B, H)
            finals[0].append(h_n)
            if two_fields:
                finals[1].append(c_n)
        out = torch.cat(outputs, dim=-1) if D > 1 else outputs[0]  # (T, B, D*H)
        if layer.dropout > 0 and layer.training and k < layer.num_layers - 1:
            out = F.dropout(out, layer.dropout)  # torch.nn's draw
    return out, tuple(torch.stack(field) for field in finals)  # (L*D, B, H) each


def _reference(layer: Any, lengths: Tensor | None, reverse: bool, h_drop: Tensor | None,
               zone: Any, x: Tensor, h0: Tensor, c0: Tensor,
               *weights: Tensor) -> tuple[Tensor | None, ...]:
    """One direction's fused call by the cell's equations (the twin of `_twice`): x (T, B, I),
    h0 (B, H), c0 (B, H) or empty, the weights in `param_specs` order (empty: absent)."""
    params = tuple(w if w.numel() else None for w in weights)
    start = (h0, c0) if c0.numel() else (h0,)
    out, final = layer._reference_direction(x, start, params, lengths, reverse, h_drop, zone)
    return out, final[0], (final[1] if len(final) > 1 else None)


def _skip_reference(layer: Any, lengths: Tensor | None, reverse: bool, h_drop: Tensor | None,
                    zone: Any, x: Tensor, reg0: Tensor, *weights: Tensor) -> tuple[Tensor, ...]:
    """The skip RNN's direction by its cell's equations; reg0 = [h0, past0] (B, K*H)."""
    params = tuple(w if w.numel() else None for w in weights)
    H = layer.hidden_size
    out, (h_n, past_n) = layer._reference_direction(
        x, (reg0[:, :H], reg0[:, H:]), params, lengths, reverse, h_drop, zone)
    return out, torch.cat([h_n, past_n], dim=-1)
