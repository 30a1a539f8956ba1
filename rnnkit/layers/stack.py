"""The one loop over a layer's stack (layers x directions, inter-layer dropout) and the engine
each layer of it runs on: the cell's equations (the reference) or the fused kernels.

Every engine goes through `run_layers`, so the random draws (regulariser masks per layer and
direction before running it, torch.nn's inter-layer dropout after every layer but the last)
come in one order for all of them, and a fused run equals the reference run from one seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import engine as _engine
from rnnkit.layers import _regularisers

__all__ = ["run_layers", "run_reference", "fused_reason", "run_fused", "uses_direction_kernels"]

State = tuple[Tensor, ...]
#: run_layer(k, x (T, B, I_k), start (D, B, H) per field) -> out (T, B, D*H), final like start
RunLayer = Callable[[int, Tensor, State], tuple[Tensor, State]]
#: run_direction(k, d, x (T, B, I_k), start (B, H) per field, h_drop, zone) -> out (T, B, H),
#: final (B, H) per field
RunDirection = Callable[[int, int, Tensor, State, Tensor | None, Any], tuple[Tensor, State]]


def run_layers(layer: Any, x: Tensor, state: State, run_layer: RunLayer) -> tuple[Tensor, State]:
    """Every layer k of `layer` by `run_layer`, with inter-layer dropout.

    Shape: x (T, B, I), state (L*D, B, H) per field -> out (T, B, D*H), final state like state.
    """
    D = layer.num_directions
    if layer.num_layers == 1:  # the common case, without the bookkeeping
        return run_layer(0, x, state)
    finals: list[list[Tensor]] = [[] for _ in state]
    out = x
    for k in range(layer.num_layers):
        out, final = run_layer(k, out, tuple(s[k * D:(k + 1) * D] for s in state))
        for field, value in zip(finals, final, strict=True):
            field.append(value)  # (D, B, H)
        if layer.dropout > 0 and layer.training and k < layer.num_layers - 1:
            out = F.dropout(out, layer.dropout)  # torch.nn's draw
    return out, tuple(torch.cat(field) for field in finals)  # (L*D, B, H) each


def _by_direction(layer: Any, T: int, B: int, like: Tensor,
                  run_direction: RunDirection) -> RunLayer:
    """A RunLayer that runs each direction on its own, drawing its regulariser masks first."""
    def run_layer(k: int, x: Tensor, start: State) -> tuple[Tensor, State]:
        outs: list[Tensor] = []
        finals: list[list[Tensor]] = [[] for _ in start]
        for d in range(layer.num_directions):
            h_drop, zone = _regularisers.masks(layer, T, B, like)
            out, final = run_direction(k, d, x, tuple(s[d] for s in start), h_drop, zone)
            outs.append(out)  # (T, B, H)
            for field, value in zip(finals, final, strict=True):
                field.append(value)
        out = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]  # (T, B, D*H)
        return out, tuple(torch.stack(field) for field in finals)  # (D, B, H) each
    return run_layer


# -- the reference ------------------------------------------------------------------------------

def run_reference(layer: Any, x: Tensor, state: State,
                  lengths: Tensor | None) -> tuple[Tensor, State]:
    """Every layer and direction by the cell's equations (`unroll`): the engine's oracle."""
    def direction(k: int, d: int, x_k: Tensor, start: State, h_drop: Tensor | None,
                  zone: Any) -> tuple[Tensor, State]:
        return layer._reference_direction(x_k, start, layer.layer_weights(k, d), lengths,
                                          d == 1, h_drop, zone)
    return run_layers(layer, x, state, _by_direction(layer, x.shape[0], x.shape[1], x,
                                                      direction))


# -- the fused kernels -----------------------------------------------------------------------

def uses_direction_kernels(layer: Any) -> bool:
    """True when the layer runs on the direction kernels: a variant cell, or a standard one
    with recurrent dropout (in training) or zoneout, which the layer kernels do not have."""
    return (layer.mode not in _engine.LAYER_CELLS or any(layer.zoneout)
            or (layer.training and layer.recurrent_dropout > 0))


def _cell(layer: Any) -> str:
    """The engine's name for the layer's cell (the leaky RNN names its nonlinearity)."""
    if layer.mode == "RNN_LEAKY":
        return f"RNN_LEAKY_{layer.cell_options.get('nonlinearity', 'tanh').upper()}"
    return layer.mode


def fused_reason(layer: Any, x: Tensor) -> str | None:
    """Why the fused kernels cannot run `layer` on `x`, or None if they can."""
    if layer.proj_size:
        return (f"the fused engine has no LSTM projection (proj_size={layer.proj_size}); "
                "use engine='reference'")
    return _engine.unsupported_reason(_cell(layer), x, layer.layer_weights(0, 0)[0],
                                      per_direction=uses_direction_kernels(layer))


def run_fused(layer: Any, x: Tensor, state: State, lengths: Tensor | None, *,
              per_direction: bool | None = None) -> tuple[Tensor, State]:
    """Every layer and direction through the fused kernels (the layer has just asked
    `fused_reason`; not asking twice keeps a one-step call cheap).

    Shape: x (T, B, I) time-major, state (L*D, B, H) per field, lengths (B,) int64 or None ->
    out (T, B, D*H), zero past each length, and the final state like `state`.
    `per_direction` True runs a standard cell on the direction kernels too (for tests).
    """
    if uses_direction_kernels(layer) if per_direction is None else per_direction:
        run_direction = (_skip_direction if layer.mode == "RNN_SKIP" else _fused_direction)
        run = functools.partial(run_direction, layer, lengths)
        return run_layers(layer, x, state, _by_direction(layer, x.shape[0], x.shape[1], x, run))
    return run_layers(layer, x, state, functools.partial(_fused_layer, layer, lengths))


def _fused_layer(layer: Any, lengths: Tensor | None, k: int, x: Tensor,
                 start: State) -> tuple[Tensor, State]:
    """Layer k, every direction in one call of the layer kernels."""
    weights = [layer.layer_weights(k, d)[:4] for d in range(layer.num_directions)]
    lstm = len(start) == 2
    twin = functools.partial(_reference_layer, layer, lengths)
    out, h_n, c_n = _engine.fused_layer(layer.mode, x, start[0], start[1] if lstm else None,
                                        weights, lengths, twin)
    return out, ((h_n, c_n) if lstm else (h_n,))


def _fused_direction(layer: Any, lengths: Tensor | None, k: int, d: int, x: Tensor,
                     start: State, h_drop: Tensor | None, zone: Any) -> tuple[Tensor, State]:
    """Layer k, direction d, on the direction kernels."""
    twin = functools.partial(_reference_direction, layer, lengths, d == 1, h_drop, zone)
    out, h_n, c_n = _engine.fused_direction(
        _cell(layer), x, start[0], start[1] if len(start) == 2 else None,
        layer.layer_weights(k, d), lengths, d == 1, h_drop, zone, twin)
    return out, ((h_n, c_n) if len(start) == 2 else (h_n,))


def _skip_direction(layer: Any, lengths: Tensor | None, k: int, d: int, x: Tensor,
                    start: State, h_drop: Tensor | None, zone: Any) -> tuple[Tensor, State]:
    """Layer k, direction d of a skip RNN: its second state field is the past, not c."""
    relu = layer.cell_options.get("nonlinearity", "tanh") == "relu"
    twin = functools.partial(_skip_reference, layer, lengths, d == 1, h_drop, zone)
    out, h_n, past_n = _engine.skip_direction(
        layer.cell_options["delays"], relu, x, start[0], start[1], layer.layer_weights(k, d),
        lengths, d == 1, h_drop, zone, twin)
    return out, (h_n, past_n)


# -- the reference twins: the same calls by differentiable ops, for gradients of gradients --

def _reference_layer(layer: Any, lengths: Tensor | None, x: Tensor, h0: Tensor, c0: Tensor,
                     *flat: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """`fused_layer`'s call by the cell's equations: x (T, B, I), h0 and c0 (D, B, H) (c0
    empty unless LSTM), 4 weights per direction (empty: no bias)."""
    outs, h_n, c_n = [], [], []
    for d in range(h0.shape[0]):
        params = tuple(w if w.numel() else None for w in flat[4 * d:4 * d + 4])
        start = (h0[d], c0[d]) if c0.numel() else (h0[d],)
        out, final = layer._reference_direction(x, start, params, lengths, d == 1)
        outs.append(out)
        h_n.append(final[0])
        if c0.numel():
            c_n.append(final[1])
    out = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
    return out, torch.stack(h_n), (torch.stack(c_n) if c_n else None)


def _reference_direction(layer: Any, lengths: Tensor | None, reverse: bool,
                         h_drop: Tensor | None, zone: Any, x: Tensor, h0: Tensor, c0: Tensor,
                         *weights: Tensor) -> tuple[Tensor | None, ...]:
    """`fused_direction`'s call by the cell's equations: x (T, B, I), h0 (B, H), c0 (B, H) or
    empty, the weights in `param_specs` order (empty: absent)."""
    params = tuple(w if w.numel() else None for w in weights)
    start = (h0, c0) if c0.numel() else (h0,)
    out, final = layer._reference_direction(x, start, params, lengths, reverse, h_drop, zone)
    return out, final[0], (final[1] if len(final) > 1 else None)


def _skip_reference(layer: Any, lengths: Tensor | None, reverse: bool, h_drop: Tensor | None,
                    zone: Any, x: Tensor, reg0: Tensor, *weights: Tensor) -> tuple[Tensor, ...]:
    """`skip_direction`'s call by the cell's equations; reg0 = [h0, past0] (B, K*H)."""
    params = tuple(w if w.numel() else None for w in weights)
    H = layer.hidden_size
    out, (h_n, past_n) = layer._reference_direction(
        x, (reg0[:, :H], reg0[:, H:]), params, lengths, reverse, h_drop, zone)
    return out, torch.cat([h_n, past_n], dim=-1)
