"""Vanishing and exploding gradients: how far back does a loss at the last step reach?"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from rnnkit.cells.base import RecurrentCell

__all__ = ["gradient_flow", "decay_per_step"]


def gradient_flow(cell: RecurrentCell, x: Tensor, state: Any = None) -> Tensor:
    """||dL/dh_t|| for every step t, with L a fixed random projection of the last h_T.

    BPTT carries dL/dh_t = J_{t+1}^T dL/dh_{t+1} backwards, with J the step Jacobian
    (for a tanh RNN, J^T = W^T diag(1 - h_{t+1}^2)); when its norm stays below one the
    gradient shrinks geometrically with the distance T - t (vanishing), above one it grows
    (exploding). Gated cells with a forget gate near 1 keep it near constant.

    Args:
        cell: any cell of the protocol.
        x: (T, B, I) inputs.
        state: the initial state (zeros if None).

    Returns:
        (T,) float64 norms, averaged over the batch; entry t is ||dL/dh_t||.
    """
    T, B = x.shape[0], x.shape[1]
    state = cell.init_state(B, dtype=x.dtype) if state is None else state
    hs = []
    for t in range(T):
        state = cell.next_state(x[t], state)
        state.h.retain_grad()
        hs.append(state.h)
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(hs[-1].shape, generator=g, dtype=x.dtype)
    (hs[-1] * probe).sum().backward()
    return torch.stack([h.grad.norm(dim=-1).mean() for h in hs]).double()


def decay_per_step(norms: Tensor, skip: int = 5) -> float:
    """Geometric rate r with ||dL/dh_t|| ~ r^(T - t), fitted over all but the last `skip`
    steps (r < 1 vanishing, r > 1 exploding)."""
    y = torch.log(norms[: len(norms) - skip].clamp_min(1e-300))
    if len(y) < 2:
        raise ValueError(f"need more than {skip + 1} steps to fit a rate, got {len(norms)}")
    k = torch.arange(len(y), dtype=torch.float64)
    slope = ((k - k.mean()) * (y - y.mean())).sum() / ((k - k.mean()) ** 2).sum()
    return math.exp(-slope.item())  # log n_t = (T - t) log r: the slope over t is -log r
