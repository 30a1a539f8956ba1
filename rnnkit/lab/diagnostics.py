"""Gradient and gate diagnostics for any recurrent layer: ||dL/dh_t|| for every step (through
the fused engine), the share of the gradient reaching each step, gate saturation, and the
spectral radius of the recurrent weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["state_gradient_norms", "gradient_share", "gate_saturation", "spectral_radius"]

#: Sigmoid gates per cell mode, in the order their blocks are stacked in `weight_ih`.
_SIGMOID_GATES = {"LSTM": {"input": 0, "forget": 1, "output": 3}, "GRU": {"reset": 0,
                                                                          "update": 1}}


def state_gradient_norms(layer: Any, x: Tensor,
                         loss_fn: Callable[[Tensor], Tensor] | None = None,
                         hx: Any = None) -> Tensor:
    """||dL/dh_t|| for every step t of the top layer's state, averaged over the batch.

    The layer runs one step per call (`layer.step`, so the fused engine's kernels on CPU), and
    each step's state is kept, so the gradient that reaches h_t through the recurrence and
    through the loss is read off it: dL/dh_t = W^T diag(f'(a_{t+1})) dL/dh_{t+1} + (direct
    term), the BPTT recursion. For a loss on the last step only, its decay with T - t is the
    vanishing (or exploding) gradient.

    Args:
        layer: a unidirectional rnnkit layer (rk.RNN, rk.LSTM, ... or a variant).
        x: (T, B, I) input, time-major.
        loss_fn: maps the outputs (T, B, H) to a scalar; default: a fixed random projection of
            the last step's output (the probe of `gradient_flow`).
        hx: the initial state (zeros if None).

    Returns:
        (T,) float64 norms; entry t is ||dL/dh_t|| averaged over the batch.
    """
    T = x.shape[0]
    state, outs, kept = hx, [], []
    for t in range(T):
        y, state = layer.step(x[t], state)
        h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        h.retain_grad()
        y.retain_grad()
        kept.append(h)
        outs.append(y)
    out = torch.stack(outs)  # (T, B, H)
    if loss_fn is None:
        gen = torch.Generator().manual_seed(0)
        probe = torch.randn(out[-1].shape, generator=gen, dtype=out.dtype)
        loss = (out[-1] * probe).sum()
    else:
        loss = loss_fn(out)
    loss.backward()
    norms = []
    for h, y in zip(kept, outs, strict=True):
        # h_t reaches the loss through the next step (h's grad) and through its own output
        # (y's grad); the top layer's state is the last L*D row
        g = (h.grad[-1] if h.grad is not None else 0) + (y.grad if y.grad is not None else 0)
        norms.append(torch.as_tensor(g).reshape(y.shape).norm(dim=-1).mean())
    return torch.stack(norms).double()


def gradient_share(norms: Tensor) -> Tensor:
    """Each step's share of the total gradient norm: norms / norms.sum() (T,)."""
    total = norms.sum()
    return norms / total if total > 0 else torch.zeros_like(norms)


def gate_saturation(layer: Any, x: Tensor, low: float = 0.05,
                    high: float = 0.95) -> dict[str, dict[str, float]]:
    """Fraction of each sigmoid gate's activations below `low` and above `high`, over every
    step, batch row and unit of every layer and direction (LSTM: input, forget, output; GRU:
    reset, update). Saturated gates pass almost no gradient through their own derivative.

    Shape: x (T, B, I). Returns {gate: {"below": fraction, "above": fraction}}.
    """
    gates = _SIGMOID_GATES.get(_base_mode(layer))
    if gates is None:
        raise ValueError(f"gate_saturation reads the gates of rk.LSTM and rk.GRU; "
                         f"{type(layer).__name__} (mode {layer.mode!r}) has none")
    counts = {g: [0.0, 0.0] for g in gates}
    total = 0
    with torch.no_grad():
        layer_input = x
        for k in range(layer.num_layers):
            outputs = []
            for d in range(layer.num_directions):
                w_ih, w_hh, b_ih, b_hh = layer.layer_weights(k, d)[:4]
                # the layer's own states at every step, then the gates they produced
                out, _ = layer._reference_direction(
                    layer_input, _zeros(layer, layer_input), layer.layer_weights(k, d),
                    None, d == 1)
                prev = torch.roll(out, 1 if d == 0 else -1, dims=0)  # h_{t-1} (T, B, H)
                prev[0 if d == 0 else -1] = 0.0
                pre = F.linear(layer_input, w_ih, b_ih)  # (T, B, G)
                hh = F.linear(prev, w_hh, b_hh)  # (T, B, G)
                H = layer.hidden_size
                for name, block in gates.items():
                    a = torch.sigmoid(pre[..., block * H:(block + 1) * H]
                                      + hh[..., block * H:(block + 1) * H])
                    counts[name][0] += float((a < low).sum())
                    counts[name][1] += float((a > high).sum())
                total += out.numel()
                outputs.append(out)
            layer_input = torch.cat(outputs, dim=-1)
    return {g: {"below": c[0] / total, "above": c[1] / total} for g, c in counts.items()}


def spectral_radius(layer: Any) -> dict[str, float]:
    """The spectral radius (largest |eigenvalue|) of each recurrent weight block W_hh (H, H):
    one value per layer, direction and gate block (`l0.i`, `l0_reverse.f`, ...; plain RNN:
    `l0`). Above 1 the linearised recurrence can amplify, below it contracts."""
    names = {"LSTM": "ifgo", "GRU": "rzn"}.get(_base_mode(layer), None)
    result = {}
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            w_hh = layer.layer_weights(k, d)[1].detach().double()  # (G, H)
            H = w_hh.shape[1]
            blocks = w_hh.split(H, dim=0) if w_hh.shape[0] != H else (w_hh,)
            suffix = f"l{k}{'_reverse' if d else ''}"
            for j, block in enumerate(blocks):
                if block.shape[0] != block.shape[1]:
                    continue  # a projected LSTM's blocks are not square
                key = suffix if names is None or len(blocks) == 1 else f"{suffix}.{names[j]}"
                result[key] = float(torch.linalg.eigvals(block).abs().max())
    return result


def _base_mode(layer: Any) -> str:
    """"LSTM" or "GRU" for the plain cells (the LayerNorm and peephole variants compute their
    gates otherwise), else the layer's mode."""
    return getattr(layer, "mode", "")


def _zeros(layer: Any, x: Tensor) -> tuple[Tensor, ...]:
    sizes = layer.cell_cls.state_sizes(layer.hidden_size, **layer.cell_options)
    return tuple(x.new_zeros(x.shape[1], n) for n in sizes)
