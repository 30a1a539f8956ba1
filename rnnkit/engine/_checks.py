"""What every fused kernel needs of its input and weights (a known cell, CPU, float32/64)."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor

__all__ = ["input_problem"]

_DTYPES = (torch.float32, torch.float64)


def input_problem(cell: str, x: Tensor, weight: Tensor, cells: Collection[str],
                  kernels: str) -> str | None:
    """Why no fused kernel (`kernels`, for the message) can run `cell` on `x` with a weight
    like `weight`, or None."""
    if cell not in cells:
        return f"no {kernels} for cell {cell!r}; expected one of {sorted(cells)}"
    if x.device.type != "cpu":
        return f"the fused engine runs on CPU tensors, got input on device {x.device}"
    if x.dtype not in _DTYPES:
        return f"the fused engine runs float32 and float64, got input of dtype {x.dtype}"
    if weight.dtype != x.dtype or weight.device != x.device:
        return (f"the weights are {weight.dtype} on {weight.device} but the input is {x.dtype} "
                f"on {x.device}; expected the same dtype and device")
    return None
