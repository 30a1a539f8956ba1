"""Gradients of gradients for the fused Functions: under create_graph=True their backward
differentiates a reference twin of the same call, so gradient penalties and Hessian-vector
products work on the default engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["Reference", "differentiable_grads"]

#: The same computation as a fused call, by plain differentiable ops: the call's tensor inputs
#: in, its outputs out (None for an output the call does not have).
Reference = Callable[..., Sequence[Tensor | None]]


def differentiable_grads(reference: Reference | None, inputs: Sequence[Tensor],
                         grad_outputs: Sequence[Tensor | None],
                         needs: Sequence[bool]) -> list[Tensor | None]:
    """The input gradients of `reference(*inputs)` for `grad_outputs`, themselves
    differentiable: what a fused Function's backward returns when autograd is asked for a graph
    of the gradient (create_graph=True). One entry per input, None where `needs` is False.
    """
    if reference is None:
        raise RuntimeError("this fused call has no reference twin, so its gradient is not "
                           "differentiable; run the layer with engine='reference'")
    with torch.enable_grad():
        outputs = reference(*inputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs, strict=True)
             if o is not None and g is not None and o.requires_grad]
    wanted = [t for t, n in zip(inputs, needs, strict=True) if n]
    if not pairs or not wanted:
        return [None] * len(inputs)
    grads = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                     create_graph=True, allow_unused=True))
    return [next(grads) if n else None for n in needs]
