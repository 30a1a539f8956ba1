"""Dropout, recurrent dropout and zoneout: argument checks and the random masks, drawn in one
order."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["Dropout", "check_rate", "check_zoneout", "dropout", "masks"]


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout, as `F.dropout`: each element is zeroed with probability p and the rest
    scaled by 1 / (1 - p). The mask compares uniform draws with p instead of calling
    `bernoulli_`, which is about twice as slow on CPU (20.7 against 10.0 ms for 2 M elements).

        >>> torch.manual_seed(0) and None
        >>> y = dropout(torch.ones(10_000), 0.25)
        >>> sorted(set(y.tolist())), abs((y == 0).float().mean().item() - 0.25) < 0.02
        ([0.0, 1.3333333730697632], True)
    """
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = (torch.rand_like(x) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * keep


class Dropout(torch.nn.Dropout):
    """`torch.nn.Dropout` drawing its mask as `dropout` does (same distribution, faster)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


def check_rate(name: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)


def check_zoneout(zoneout: Any, n_fields: int) -> tuple[float, ...]:
    rates = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout,) * n_fields
    if len(rates) != n_fields:
        raise ValueError(f"zoneout must be one rate or one per state field ({n_fields}), "
                         f"got {zoneout!r}")
    return tuple(check_rate("zoneout", p) for p in rates)


def masks(layer: Any, T: int, B: int, like: Tensor
          ) -> tuple[Tensor | None, tuple[Tensor | float | None, ...] | None]:
    """The recurrent-dropout multiplier (B, n_h) and the zoneout masks for one layer and
    direction, drawn from torch's default generator in a fixed order (first the dropout
    mask, then one (T, B, n) zoneout mask per state field), so every engine sees the same.

    In evaluation mode: no dropout, and zoneout as its rates (the expectation).
    """
    sizes = layer.cell_cls.state_sizes(layer.hidden_size, **layer.cell_options)
    h_drop = None
    p = layer.recurrent_dropout
    if layer.training and p > 0:
        keep = torch.full((B, sizes[0]), 1 - p, dtype=like.dtype, device=like.device)
        h_drop = torch.bernoulli(keep) / (1 - p)
    if not any(layer.zoneout):
        return h_drop, None
    if not layer.training:
        return h_drop, tuple(z if z > 0 else None for z in layer.zoneout)
    zone = tuple(
        torch.rand(T, B, n, device=like.device) < z if z > 0 else None
        for z, n in zip(layer.zoneout, sizes, strict=True)
    )
    return h_drop, zone
