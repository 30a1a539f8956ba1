"""`fused_direction` and `skip_direction`: one direction of one layer, any cell, with recurrent
dropout and zoneout, as torch.autograd.Functions over the C++ direction kernels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rnnkit.engine._build import build_error, load_extension
from rnnkit.engine._twice import Reference, differentiable_grads
from rnnkit.engine.cells import CODES

__all__ = ["FusedDirection", "fused_direction", "SkipDirection", "skip_direction"]

_NO_LENGTHS = torch.empty(0, dtype=torch.int64)
_NO_MASK = torch.empty(0, dtype=torch.uint8)


def _ext():
    ext = load_extension()
    if ext is None:
        raise RuntimeError(f"fused engine unavailable: {build_error()}")
    return ext


class FusedDirection(torch.autograd.Function):
    """Forward in C++, backward = the hand-written BPTT in C++, for one direction.

    Inputs: cell code, reverse, lengths ((B,) int64 or empty), h_drop ((B, H) or empty),
    zoneout masks zh, zc ((T, B, H) uint8 or empty), evaluation zoneout rates rh, rc, then
    x (T, B, I), h0 (B, H), c0 (B, H) (empty outside the LSTM family) and the weights in the
    cell's `param_specs` order (empty for absent ones). Outputs: out (T, B, H), h_n, c_n.
    """

    @staticmethod
    def forward(ctx, cell: int, reference: Reference | None, reverse: bool, lengths: Tensor,
                h_drop: Tensor, zh: Tensor, zc: Tensor, rh: float, rc: float, x: Tensor,
                h0: Tensor, c0: Tensor, *weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        res = _ext().dir_forward(cell, x, h0, c0, list(weights), lengths, reverse, h_drop, zh,
                                 zc, rh, rc, True)
        ctx.config = (cell, reverse, rh, rc)
        ctx.reference = reference
        ctx.workspace = res[3:]
        ctx.save_for_backward(x, h0, c0, lengths, h_drop, zh, zc, *weights)
        return res[0], res[1], res[2]

    @staticmethod
    def backward(ctx, d_out: Tensor, d_h_n: Tensor, d_c_n: Tensor):
        x, h0, c0, lengths, h_drop, zh, zc, *weights = ctx.saved_tensors
        cell, reverse, rh, rc = ctx.config
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: a gradient autograd can differentiate
            grads = differentiable_grads(ctx.reference, (x, h0, c0, *weights),
                                         (d_out, d_h_n, d_c_n), need[9:])
            return (None,) * 9 + tuple(grads)
        res = _ext().dir_backward(cell, x, weights, lengths, reverse, h_drop, zh, zc, rh, rc,
                                  ctx.workspace, d_out, d_h_n, d_c_n, bool(need[9]))
        d_x, d_h0, d_c0, d_weights = res[0], res[1], res[2], res[3:]
        grads = [g if (g.numel() and need[12 + i]) else None for i, g in enumerate(d_weights)]
        return (None,) * 9 + (d_x if need[9] else None, d_h0 if need[10] else None,
                              d_c0 if (need[11] and d_c0.numel()) else None, *grads)


def _regularisers(x: Tensor, h_drop: Tensor | None,
                   zone: Sequence[Tensor | float | None] | None
                   ) -> tuple[Tensor, list[Tensor], list[float]]:
    """h_drop (or empty), the zoneout masks as uint8 (or empty) and the evaluation rates."""
    drop = x.new_empty(0) if h_drop is None else h_drop.to(x.dtype).contiguous()
    masks: list[Tensor] = [_NO_MASK, _NO_MASK]
    rates = [0.0, 0.0]
    for i, z in enumerate(zone or ()):
        if isinstance(z, Tensor):
            masks[i] = z.to(torch.uint8).contiguous()
        elif z is not None:
            rates[i] = float(z)
    return drop, masks, rates


def fused_direction(cell: str, x: Tensor, h0: Tensor, c0: Tensor | None,
                      weights: Sequence[Tensor | None], lengths: Tensor | None, reverse: bool,
                      h_drop: Tensor | None = None,
                      zone: Sequence[Tensor | float | None] | None = None,
                      reference: Reference | None = None,
                      ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one direction of one layer of `cell` (a name in `cells.CODES`) through the
    direction kernels.

    Shape: x (T, B, I), h0 and c0 (B, H), lengths (B,) int64, h_drop (B, H) the recurrent
    dropout multiplier; `zone` holds per state field a (T, B, H) bool mask of the units that
    keep their value (training), a rate (evaluation) or None. Returns out (T, B, H), h_n
    (B, H) and c_n (B, H) (None outside the LSTM family).
    `reference(x, h0, c0, *weights)`, the same call by differentiable ops, makes the gradient
    differentiable (create_graph=True).
    """
    code = CODES.get(cell)
    if code is None:
        raise ValueError(f"fused_direction: cell must be one of {sorted(CODES)}, got {cell!r}")
    empty = x.new_empty(0)
    flat = [empty if w is None else w.contiguous() for w in weights]
    lens = _NO_LENGTHS if lengths is None else lengths.to(torch.int64).contiguous()
    drop, masks, rates = _regularisers(x, h_drop, zone)
    x = x.contiguous()
    h0 = h0.contiguous()
    c0 = empty if c0 is None else c0.contiguous()
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or h0.requires_grad or c0.requires_grad
        or any(t.requires_grad for t in flat))
    args = (code, reference, reverse, lens, drop, masks[0], masks[1], rates[0], rates[1])
    if needs_grad:
        out, h_n, c_n = FusedDirection.apply(*args, x, h0, c0, *flat)
    else:
        out, h_n, c_n = _ext().dir_forward(code, x, h0, c0, flat, lens, reverse, drop, masks[0],
                                           masks[1], rates[0], rates[1], False)[:3]
    return out, h_n, (c_n if c_n.numel() else None)


class SkipDirection(torch.autograd.Function):
    """The skip RNN's direction: as VariantDirection, with the state as one register
    reg0 = [h0, past0] (B, K*H) and the sorted `delays` in place of the cell code."""

    @staticmethod
    def forward(ctx, delays: list[int], reference: Reference | None, relu: bool,
                reverse: bool, lengths: Tensor, h_drop: Tensor, zh: Tensor, zp: Tensor,
                rh: float, rp: float, x: Tensor, reg0: Tensor,
                *weights: Tensor) -> tuple[Tensor, Tensor]:
        res = _ext().skip_forward(x, reg0, list(weights), delays, relu, lengths, reverse,
                                  h_drop, zh, zp, rh, rp, True)
        ctx.config = (delays, relu, reverse, rh, rp)
        ctx.reference = reference
        ctx.workspace = res[2:]
        ctx.save_for_backward(x, reg0, lengths, h_drop, zh, zp, *weights)
        return res[0], res[1]

    @staticmethod
    def backward(ctx, d_out: Tensor, d_reg_n: Tensor):
        x, reg0, lengths, h_drop, zh, zp, *weights = ctx.saved_tensors
        delays, relu, reverse, rh, rp = ctx.config
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: a gradient autograd can differentiate
            grads = differentiable_grads(ctx.reference, (x, reg0, *weights), (d_out, d_reg_n),
                                         need[10:])
            return (None,) * 10 + tuple(grads)
        res = _ext().skip_backward(x, weights, delays, relu, lengths, reverse, h_drop, zh, zp,
                                   rh, rp, ctx.workspace, d_out, d_reg_n, bool(need[10]))
        grads = [g if (g.numel() and need[12 + i]) else None for i, g in enumerate(res[2:])]
        return (None,) * 10 + (res[0] if need[10] else None, res[1] if need[11] else None,
                               *grads)


def skip_direction(delays: Sequence[int], relu: bool, x: Tensor, h0: Tensor, past0: Tensor,
                   weights: Sequence[Tensor | None], lengths: Tensor | None, reverse: bool,
                   h_drop: Tensor | None = None,
                   zone: Sequence[Tensor | float | None] | None = None,
                   reference: Reference | None = None,
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """One direction of a skip RNN layer. Shape: x (T, B, I), h0 (B, H), past0 (B, (K-1)*H)
    -> out (T, B, H), h_n (B, H), past_n (B, (K-1)*H). `reference(x, reg0, *weights)` with
    reg0 = [h0, past0] makes the gradient differentiable (create_graph=True)."""
    empty = x.new_empty(0)
    flat = [empty if w is None else w.contiguous() for w in weights]
    lens = _NO_LENGTHS if lengths is None else lengths.to(torch.int64).contiguous()
    drop, masks, rates = _regularisers(x, h_drop, zone)
    reg0 = torch.cat([h0, past0], dim=-1).contiguous()  # (B, K*H)
    x = x.contiguous()
    order = [int(d) for d in sorted(delays)]
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or reg0.requires_grad or any(t.requires_grad for t in flat))
    if needs_grad:
        out, reg_n = SkipDirection.apply(order, reference, relu, reverse, lens, drop, masks[0],
                                         masks[1], rates[0], rates[1], x, reg0, *flat)
    else:
        out, reg_n = _ext().skip_forward(x, reg0, flat, order, relu, lens, reverse, drop,
                                         masks[0], masks[1], rates[0], rates[1], False)[:2]
    H = h0.shape[-1]
    return out, reg_n[:, :H], reg_n[:, H:]
