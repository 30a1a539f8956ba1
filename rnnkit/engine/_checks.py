"""What every fused kernel needs of a layer and its input (device, dtype, no projection)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["input_problem"]

_DTYPES = (torch.float32, torch.float64)


def input_problem(layer: Any, x: Tensor, modes: Any, kernels: str) -> str | None:
    """Why no fused kernel (`kernels`, for the message) can run `layer` on `x`, or None."""
    if layer.mode not in modes:
        return f"no {kernels} for mode={layer.mode!r}; expected one of {sorted(modes)}"
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
    return None
