"""The one generic wrapper that runs any cell step over time, with lengths and reversal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["unroll"]


def unroll(
    step: Callable[[Tensor, Any], Any],
    x: Tensor,
    state: Any,
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor | float | None] | None = None,
) -> tuple[Tensor, Any]:
    """Run `step(x_t, state) -> state` over the time axis of `x`.

    The output at each step is the state's first field (`state.h`). With `lengths`, a sequence's
    state stops changing after its last valid step and its outputs there are zero; reversed, each
    sequence starts from `state` at its own last valid step (t = length - 1) and runs down to 0.

    Args:
        step: a cell (its `next_state` runs), or any callable `(x_t, state) -> state`.
        x: (T, B, I) inputs, time-major.
        state: a NamedTuple of (B, *) tensors, the state before the first step.
        lengths: optional (B,) int64, 1 <= length <= T, any order.
        reverse: run from t = T-1 down to 0.
        zoneout: per state field, None (off), a (T, B, n) bool tensor (True: the unit keeps its
            previous value at step t; training) or a rate p (evaluation: the expectation
            p * old + (1 - p) * new). Zoneout of Krueger et al. 2016.

    Returns:
        outputs (T, B, H) and the final state (the state at each sequence's last valid step).
    """
    step = getattr(step, "next_state", step)  # a cell's own call returns torch.nn's form
    steps = x.unbind(0)  # T x (B, I); unbind keeps the backward O(T)
    order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
    outputs: list[Tensor] = [None] * len(steps)  # type: ignore[list-item]
    valid = None if lengths is None else _valid_mask(lengths, len(steps), x.device)  # (T, B, 1)
    for t in order:
        new = step(steps[t], state)
        if zoneout is not None:
            new = type(new)(*(_zone(z, t, old, n) for z, old, n in zip(zoneout, state, new,
                                                                        strict=True)))
        if valid is None:
            state = new
            outputs[t] = new[0]
        else:
            keep = valid[t]  # (B, 1)
            state = type(new)(*(torch.where(keep, n, s) for n, s in zip(new, state, strict=True)))
            outputs[t] = torch.where(keep, new[0], new[0].new_zeros(()))
    return torch.stack(outputs), state


def _zone(z: Tensor | float | None, t: int, old: Tensor, new: Tensor) -> Tensor:
    if z is None:
        return new
    if isinstance(z, Tensor):
        return torch.where(z[t], old, new)
    return z * old + (1 - z) * new


def _valid_mask(lengths: Tensor, T: int, device: torch.device) -> Tensor:
    t = torch.arange(T, device=device).unsqueeze(1)  # (T, 1)
    return (t < lengths.to(device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
