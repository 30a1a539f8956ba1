"""`fused_layer`: one layer of a standard cell (RNN, LSTM, GRU), every direction in one call,
as a torch.autograd.Function over the C++ kernels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rnnkit.engine._build import ENGINE, load_extension
from rnnkit.engine._twice import Reference, differentiable_grads
from rnnkit.engine.cells import CODES, LAYER_CELLS

__all__ = ["FusedLayer", "fused_layer", "fused_layer_flat"]

_LSTM = CODES["LSTM"]
_NO_LENGTHS = torch.empty(0, dtype=torch.int64)
_EMPTY: dict[torch.dtype, Tensor] = {}


def _empty(dtype: torch.dtype) -> Tensor:
    """A shared empty CPU tensor: stands for a missing bias or c0 (the kernels read only its
    size), without allocating one at every call."""
    empty = _EMPTY.get(dtype)
    if empty is None:
        empty = _EMPTY[dtype] = torch.empty(0, dtype=dtype)
    return empty


def _ext():
    ext = load_extension()
    if ext is None:
        from rnnkit.engine._build import build_error

        raise RuntimeError(f"fused engine unavailable: {build_error()}")
    return ext


class FusedLayer(torch.autograd.Function):
    """One layer, all directions: forward in C++, backward = the hand-written BPTT in C++.

    Inputs: mode code, the reference twin (see `_twice`; None: no gradient of the gradient),
    lengths ((B,) int64 or empty), x (T, B, I), h0 (D, B, H), c0 (D, B, H) (empty unless
    LSTM), then per direction w_ih (G, I), w_hh (G, H), b_ih (G), b_hh (G) (empty biases when
    the layer has none). Outputs: out (T, B, D*H), h_n, c_n. (The kernels also take an empty
    h0 and c0 for a zero state; `fused_layer_flat` passes them in inference only.)
    """

    @staticmethod
    def forward(ctx, mode: int, reference: Reference | None, lengths: Tensor, x: Tensor,
                h0: Tensor, c0: Tensor, *weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        res = _ext().layer_forward(mode, x, h0, c0, list(weights), lengths, True)
        out, h_n, c_n = res[0], res[1], res[2]
        ctx.mode, ctx.reference = mode, reference
        ctx.workspace = res[3:]
        ctx.save_for_backward(x, h0, c0, lengths, *weights)
        return out, h_n, c_n

    @staticmethod
    def backward(ctx, d_out: Tensor, d_h_n: Tensor, d_c_n: Tensor):
        x, h0, c0, lengths, *weights = ctx.saved_tensors
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: a gradient autograd can differentiate
            grads = differentiable_grads(ctx.reference, (x, h0, c0, *weights),
                                         (d_out, d_h_n, d_c_n), need[3:])
            return (None, None, None, *grads)
        if ctx.mode != _LSTM:
            d_c_n = d_out.new_empty(0)
        res = _ext().layer_backward(ctx.mode, x, weights, lengths, ctx.workspace, d_out, d_h_n,
                                    d_c_n, bool(need[3]))
        d_x, d_h0, d_c0, d_weights = res[0], res[1], res[2], res[3:]
        grads_w = [g if (g.numel() and need[6 + i]) else None for i, g in enumerate(d_weights)]
        return (None, None, None, d_x if need[3] else None,
                d_h0 if (need[4] and h0.numel()) else None,  # empty h0: a zero state
                d_c0 if (need[5] and ctx.mode == _LSTM) else None, *grads_w)


def fused_layer(cell: str, x: Tensor, h0: Tensor, c0: Tensor | None,
                weights: Sequence[tuple[Tensor, Tensor, Tensor | None, Tensor | None]],
                lengths: Tensor | None = None,
                reference: Reference | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one layer (one direction per entry of `weights`) through the fused kernels.

    Shape: x (T, B, I), h0 and c0 (D, B, H), lengths (B,) int64 -> out (T, B, D*H),
    h_n and c_n (D, B, H); c0 and c_n are None unless cell is "LSTM". `reference`, the same
    layer by differentiable ops taking (x, h0, c0, *flat weights), makes the gradient
    differentiable (create_graph=True); without it a second derivative raises.

    Raises ValueError, naming the argument, for a shape, dtype or device that does not match
    (the hidden size is read from h0, the input size from x) and for lengths outside [1, T];
    TypeError for lengths that are not integers.
    """
    if cell not in LAYER_CELLS:
        raise ValueError(f"fused_layer: cell must be one of {sorted(LAYER_CELLS)}, got {cell!r}")
    code = CODES[cell]
    flat: list[Tensor] = []
    empty = _empty(x.dtype)
    for w_ih, w_hh, b_ih, b_hh in weights:  # the C++ side makes them contiguous
        flat += [w_ih, w_hh, empty if b_ih is None else b_ih, empty if b_hh is None else b_hh]
    lens = _NO_LENGTHS if lengths is None else _lengths(lengths)
    if c0 is None:
        c0 = empty
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, h0, c0, *flat))
    try:  # the C++ side checks every shape, dtype and length (csrc/checks.h)
        if needs_grad:
            out, h_n, c_n = FusedLayer.apply(code, reference, lens, x, h0, c0, *flat)
        else:
            out, h_n, c_n = _ext().layer_forward(code, x, h0, c0, flat, lens, False)[:3]
    except ValueError as exc:  # named after this function, which the caller knows
        raise ValueError(str(exc).replace("layer_forward:", "fused_layer:", 1)) from None
    return out, h_n, (c_n if code == _LSTM else None)


def _lengths(lengths: Tensor) -> Tensor:
    """lengths as int64 (the kernels check their shape and range); a float tensor is an error,
    not something to truncate."""
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"fused_layer: lengths must be an integer tensor, got dtype "
                        f"{lengths.dtype}")
    return lengths.to(torch.int64)


def fused_layer_flat(code: int, x: Tensor, h0: Tensor, c0: Tensor, flat: Sequence[Tensor],
                     reference: Reference | None) -> tuple[Tensor, Tensor, Tensor] | None:
    """`fused_layer` for a caller that has its inputs in the kernels' form already (one call
    per step of a decoder): `code` from `CODES`, `flat` the 4 weights of each direction (empty
    biases for none), c0 an empty tensor unless LSTM, no lengths. An empty h0 (and c0) is a
    zero state, for a call that autograd does not record. Returns (out, h_n, c_n)
    (c_n empty unless LSTM), or None while the engine is not loaded yet. Raises the kernels'
    ValueError for a shape or dtype they cannot take (the caller re-checks in Python then)."""
    ext = ENGINE.module
    if ext is None:
        return None
    if torch.is_grad_enabled() and (x.requires_grad or h0.requires_grad or c0.requires_grad
                                    or any(w.requires_grad for w in flat)):
        return FusedLayer.apply(code, reference, _NO_LENGTHS, x, h0, c0, *flat)
    res = ext.layer_forward(code, x, h0, c0, flat, _NO_LENGTHS, False)
    return res[0], res[1], res[2]


def decode_step(code: int, tokens: Tensor, embedding: Tensor, feed: Tensor, h0: Tensor,
                c0: Tensor, flat: Sequence[Tensor], keys: Tensor, projected: Tensor,
                mask: Tensor, w_combine: Tensor, w_query: Tensor, v: Tensor, w_out: Tensor,
                b_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor] | None:
    """One inference step of an attention decoder in one kernel call (csrc/decoder_kernels.cpp):
    embedding row and input feeding, the one-layer cell `code` on (h0, c0), attention over
    `keys` with the `projected` keys (the keys themselves for dot attention), combine and
    output layer. Empty `feed` means no input feeding; empty `keys`, no attention (vec = h);
    empty `w_query`, Luong scores against the new hidden state, else Bahdanau's
    `v . tanh(W_q h_prev + projected)`, whose context joins the cell's input.
    Returns (logits, h_n, c_n, vec, weights), or None while the engine is not loaded. Never
    recorded by autograd: for no_grad decoding only. Raises ValueError for inputs the kernels
    cannot take."""
    ext = ENGINE.module
    if ext is None:
        return None
    res = ext.decode_step(code, tokens, embedding, feed, h0, c0, flat, keys, projected, mask,
                          w_combine, w_query, v, w_out, b_out)
    return res[0], res[1], res[2], res[3], res[4]
