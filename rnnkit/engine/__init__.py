"""Layer 'engine': the fused CPU engine (forward + hand-written BPTT) behind rk.RNN/LSTM/GRU.

The layers call `supports(layer, x)` to ask whether a fused kernel exists for this layer and
input, and `run_stack(layer, x, state, lengths)` to run the whole stack of layers through it.
The kernels live in csrc/ (one C++ translation unit, built on first use and cached per user,
see `_build.py`); `functions.py` wraps them as a torch.autograd.Function per layer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.engine._build import build_error, load_extension
from rnnkit.engine.functions import MODES, FusedLayer, fused_layer, fused_stack

__all__ = ["supports", "run_stack", "unsupported_reason", "fused_layer", "FusedLayer",
           "load_extension"]

_DTYPES = (torch.float32, torch.float64)


def unsupported_reason(layer, x: Tensor) -> str | None:
    """Why the fused engine cannot run `layer` on `x`, or None if it can."""
    if layer.mode not in MODES:
        return f"no fused kernel for mode={layer.mode!r}; expected one of {sorted(MODES)}"
    if x.device.type != "cpu":
        return f"the fused engine runs on CPU tensors, got input on device {x.device}"
    if x.dtype not in _DTYPES:
        return f"the fused engine runs float32 and float64, got input of dtype {x.dtype}"
    if getattr(layer, "proj_size", 0):
        return (f"the fused engine has no LSTM projection (proj_size={layer.proj_size}); "
                "use engine='reference'")
    w_ih = layer.layer_weights(0, 0)[0]
    if w_ih.dtype != x.dtype or w_ih.device != x.device:
        return (f"the weights are {w_ih.dtype} on {w_ih.device} but the input is {x.dtype} on "
                f"{x.device}; expected the same dtype and device")
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
