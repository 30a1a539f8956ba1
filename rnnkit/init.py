"""Initialisation schemes for recurrent layers: identity (IRNN), forget-gate bias, chrono.

Each function works in place on an rnnkit or torch.nn layer or cell (parameters named
`weight_hh_l0`, `bias_ih_l0`, ... or `weight_hh`, `bias_ih`) and returns it, so it can wrap a
constructor:
`identity_(rk.RNN(8, 64, nonlinearity="relu"))`.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

__all__ = ["identity_", "forget_bias_", "chrono_"]

_BIAS = re.compile(r"^bias_(ih|hh)(_l\d+(_reverse)?)?$")


def identity_(layer: nn.Module, scale: float = 1.0, input_std: float = 0.001) -> nn.Module:
    """IRNN initialisation (Le, Jaitly & Hinton 2015) for ReLU RNN layers.

    W_hh = scale * I, biases 0, W_ih ~ N(0, input_std^2).
    """
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("weight_hh"):
                if p.shape[0] != p.shape[1]:
                    raise ValueError(f"identity init needs a square recurrent matrix, {name} is "
                                     f"{tuple(p.shape)} (a gated cell has G = k*H rows)")
                p.copy_(torch.eye(p.shape[0], dtype=p.dtype) * scale)
            elif name.startswith("weight_ih"):
                p.normal_(0.0, input_std)
            elif name.startswith("bias"):
                p.zero_()
    return layer


def _gate_slices(layer: nn.Module) -> tuple[int, int | None]:
    """(index of the gate that keeps the old state, index of the input gate or None)."""
    mode = getattr(layer, "mode", type(layer).__name__.upper())
    if mode.startswith("LSTM"):
        return 1, 0  # gates i, f, g, o: forget is block 1, input is block 0
    if mode.startswith("GRU"):
        return 1, None  # gates r, z, n: z keeps the old state (torch.nn's convention)
    raise ValueError(f"forget-gate initialisation needs an LSTM or GRU layer, got mode {mode!r}")


def _biases(layer: nn.Module) -> list[tuple[str, Tensor, Tensor]]:
    params = dict(layer.named_parameters())
    pairs = []
    for name, p in params.items():
        if _BIAS.match(name) and name.startswith("bias_ih"):
            pairs.append((name, p, params[name.replace("bias_ih", "bias_hh", 1)]))
    if not pairs:
        raise ValueError("the layer has no biases (bias=False); nothing to initialise")
    return pairs


def forget_bias_(layer: nn.Module, value: float = 1.0) -> nn.Module:
    """Set the forget-gate bias (LSTM f, GRU z) to `value`, split as b_ih = value, b_hh = 0.

    A positive forget bias makes the cell remember by default at the start of training
    (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1.0).
    """
    keep, _ = _gate_slices(layer)
    H = layer.hidden_size
    with torch.no_grad():
        for _, b_ih, b_hh in _biases(layer):
            b_ih[keep * H:(keep + 1) * H] = value
            b_hh[keep * H:(keep + 1) * H] = 0.0
    return layer


def chrono_(layer: nn.Module, t_max: float, generator: torch.Generator | None = None
            ) -> nn.Module:
    """Chrono initialisation (Tallec & Ollivier 2018) for dependencies up to `t_max` steps.

    forget bias b_f ~ log(U[1, t_max - 1]) and, for LSTM, input bias b_i = -b_f; so the
    characteristic forgetting times of the units spread over [1, t_max].
    """
    if not t_max > 2:
        raise ValueError(f"t_max must be greater than 2, got {t_max!r}")
    keep, inp = _gate_slices(layer)
    H = layer.hidden_size
    with torch.no_grad():
        for _, b_ih, b_hh in _biases(layer):
            u = torch.rand(H, generator=generator, dtype=torch.float64) * (t_max - 2) + 1
            b_f = torch.log(u).to(b_ih.dtype)
            b_ih[keep * H:(keep + 1) * H] = b_f
            b_hh[keep * H:(keep + 1) * H] = 0.0
            if inp is not None:
                b_ih[inp * H:(inp + 1) * H] = -b_f
                b_hh[inp * H:(inp + 1) * H] = 0.0
    return layer

