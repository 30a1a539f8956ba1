"""Layer 'engine': the fused CPU engine (forward + hand-written BPTT) behind rk.RNN/LSTM/GRU.

The layers call `supports(layer, x)` to ask whether a fused kernel exists for this layer and
input, and `run_stack(layer, x, state, lengths)` to run the whole stack of layers through it.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["supports", "run_stack", "unsupported_reason"]


def unsupported_reason(layer, x: Tensor) -> str | None:
    """Why the fused engine cannot run `layer` on `x`, or None if it can."""
    return "the fused engine is not built yet"


def supports(layer, x: Tensor) -> bool:
    """True when `run_stack(layer, x, ...)` can run."""
    return unsupported_reason(layer, x) is None


def run_stack(layer, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None):
    """Run every layer and direction of `layer` through the fused kernels."""
    raise RuntimeError(f"fused engine unavailable: {unsupported_reason(layer, x)}")
