"""Layer 'engine': the fused CPU engine (forward + hand-written BPTT) behind rk.RNN/LSTM/GRU.

The layers call `supports(layer, x)` to ask whether a fused kernel exists for this layer and
input, and `run_stack(layer, x, state, lengths)` to run the whole stack of layers through it.
The kernels live in csrc/ (one C++ translation unit, built on first use and cached per user,
see `_build.py`); `functions.py` wraps them as a torch.autograd.Function per layer.
"""

from __future__ import annotations

from torch import Tensor

from rnnkit.engine._build import build_error, load_extension
from rnnkit.engine._checks import input_problem
from rnnkit.engine.functions import MODES, FusedLayer, fused_layer, fused_stack

__all__ = ["supports", "run_stack", "unsupported_reason", "fused_layer", "FusedLayer",
           "load_extension", "empty_cache", "cached_bytes"]


def empty_cache() -> int:
    """Free the large buffers the engine keeps for reuse between calls; returns the bytes freed.

    A layer call's (T, B, *) work buffers of 64 KB and more come from a cache, so that the next
    call of the same shape reuses them instead of taking a page fault per 4 KB of fresh memory.
    What waits there is capped by RNNKIT_ENGINE_CACHE_MB (default 1024; 0 turns it off).
    """
    ext = load_extension()
    return 0 if ext is None else ext.release_cache()


def cached_bytes() -> int:
    """Bytes of freed buffers the engine keeps for reuse (see `empty_cache`)."""
    ext = load_extension()
    return 0 if ext is None else ext.cache_bytes()

def unsupported_reason(layer, x: Tensor) -> str | None:
    """Why the fused engine cannot run `layer` on `x`, or None if it can."""
    problem = input_problem(layer, x, MODES, "fused kernel")
    if problem is not None:
        return problem
    if load_extension() is None:
        return build_error()
    return None


def supports(layer, x: Tensor) -> bool:
    """True when `run_stack(layer, x, ...)` can run."""
    return unsupported_reason(layer, x) is None


def run_stack(layer, x: Tensor, state: tuple[Tensor, ...],
              lengths: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run every layer and direction of `layer` through the fused kernels.

    Shape: x (T, B, I) time-major, state ((L*D, B, H),) or (h, c) for LSTM, lengths (B,) int64
    or None -> out (T, B, D*H), zero past each length, and the final state like `state`.
    """
    # The layer has asked `unsupported_reason` just before; not asking twice keeps T=1 cheap.
    return fused_stack(layer, x, state, lengths)
