"""Layer 'engine': the fused CPU kernels (forward + hand-written BPTT), on tensors.

The engine knows no layer: it takes tensors and a cell's name (`cells.CODES`) and imports
nothing above it. `rnnkit.layers` runs a layer's stack through it:

- `fused_layer(cell, x, h0, c0, weights, lengths)`: one layer of a standard cell (RNN, LSTM,
  GRU), every direction in one call (`fused_layer.py`); `fused_layer_flat`, the same call
  with its inputs already in the kernels' form, for callers that run one step at a time;
- `fused_direction(cell, x, h0, c0, weights, lengths, reverse, h_drop, zone)`: one direction of
  any cell, with recurrent dropout and zoneout; `skip_direction` for the skip RNN
  (`fused_direction.py`);
- `unsupported_reason(cell, x, weight)`: why a kernel cannot run an input (None if it can).

Each takes an optional `reference`, the same call by differentiable ops, used for gradients of
gradients (`_twice.py`). The kernels live in csrc/, built on first use and cached per user
(`_build.py`) as one extension; `tuning.py` holds the thresholds that choose their
schedules.
"""

from __future__ import annotations

from torch import Tensor

from rnnkit.engine._build import build_error, load_extension
from rnnkit.engine._checks import input_problem
from rnnkit.engine.cells import CODES, DIRECTION_CELLS, LAYER_CELLS, TWO_FIELD_CELLS
from rnnkit.engine.fused_direction import fused_direction, skip_direction
from rnnkit.engine.fused_layer import FusedLayer, decode_step, fused_layer, fused_layer_flat

__all__ = ["CODES", "LAYER_CELLS", "DIRECTION_CELLS", "TWO_FIELD_CELLS", "unsupported_reason",
           "fused_layer", "fused_layer_flat", "decode_step", "FusedLayer", "fused_direction",
           "skip_direction",
           "load_extension", "build_error", "empty_cache", "cached_bytes"]


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


def unsupported_reason(cell: str, x: Tensor, weight: Tensor, *,
                       per_direction: bool = False) -> str | None:
    """Why the engine cannot run `cell` on `x` with weights like `weight`, or None if it can:
    `fused_layer` (the default) or, with `per_direction`, `fused_direction` / `skip_direction`.
    """
    if per_direction:
        problem = input_problem(cell, x, weight, DIRECTION_CELLS, "fused direction kernel")
    else:
        problem = input_problem(cell, x, weight, LAYER_CELLS, "fused layer kernel")
    if problem is None and load_extension() is None:
        problem = build_error()
    return problem
