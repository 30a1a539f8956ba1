"""EchoStateNetwork: a fixed random reservoir; only the linear readout is trained."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.cells.leaky_rnn_cell import LeakyRNNCell
from rnnkit.cells.rnn_cell import RNNState
from rnnkit.layers.scan import unroll

__all__ = ["EchoStateNetwork"]


class EchoStateNetwork(nn.Module):
    """Echo state network (Jaeger 2001) with leaky-integrator reservoir units.

    h_t = (1 - a) h_{t-1} + a tanh(W_in x_t + W h_{t-1} + b)     (W, W_in, b fixed)
    y_t = W_out [1; h_t]                                           (trained)

    W is sparse (each weight nonzero with probability `density`) and scaled to the chosen
    spectral radius; W_in is uniform in [-input_scaling, input_scaling]. The readout is fitted
    in closed form by ridge regression (`fit`), or trained by gradient like any module.

    Args:
        input_size: I.
        reservoir_size: H, number of reservoir units.
        output_size: O, readout outputs.
        spectral_radius: largest |eigenvalue| of W (< 1 for the echo state property, usually).
        density: fraction of nonzero recurrent weights.
        leak_rate: a in (0, 1].
        input_scaling, bias_scaling: ranges of W_in and b.
        seed: makes the reservoir reproducible.

    Shape: x (T, B, I) -> y (T, B, O).

    Example:
        >>> import torch
        >>> esn = EchoStateNetwork(1, 50, 1, seed=0)
        >>> x = torch.sin(torch.arange(300.0) / 5).reshape(-1, 1, 1)
        >>> _ = esn.fit(x[:-1], x[1:], washout=50)
        >>> bool((esn(x[:-1])[50:] - x[51:]).abs().max() < 0.05)
        True
    """

    def __init__(self, input_size: int, reservoir_size: int, output_size: int, *,
                 spectral_radius: float = 0.9, density: float = 0.1, leak_rate: float = 1.0,
                 input_scaling: float = 1.0, bias_scaling: float = 0.0, seed: int | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if not 0 < density <= 1:
            raise ValueError(f"density must be in (0, 1], got {density!r}")
        if not 0 < leak_rate <= 1:
            raise ValueError(f"leak_rate must be in (0, 1], got {leak_rate!r}")
        if spectral_radius <= 0:
            raise ValueError(f"spectral_radius must be positive, got {spectral_radius!r}")
        self.input_size, self.reservoir_size = input_size, reservoir_size
        self.leak_rate = leak_rate
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        H = reservoir_size
        w = (torch.rand(H, H, generator=g, dtype=torch.float64) * 2 - 1)
        w = w * (torch.rand(H, H, generator=g, dtype=torch.float64) < density)
        radius = torch.linalg.eigvals(w).abs().max()
        if radius == 0:
            raise ValueError("the reservoir has no nonzero eigenvalue; raise density")
        w = w * (spectral_radius / radius)
        w_in = (torch.rand(H, input_size, generator=g, dtype=torch.float64) * 2 - 1)
        b = (torch.rand(H, generator=g, dtype=torch.float64) * 2 - 1) * bias_scaling
        self.register_buffer("weight_ih", (w_in * input_scaling).to(dtype))
        self.register_buffer("weight_hh", w.to(dtype))
        self.register_buffer("bias", b.to(dtype))
        self.readout = nn.Linear(H, output_size, dtype=dtype)

    def states(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """Reservoir states (T, B, H) for inputs x (T, B, I), starting from h0 (B, H)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be (T, B, I={self.input_size}), got {tuple(x.shape)}")
        x = x.to(self.weight_hh.dtype)
        h0 = x.new_zeros(x.shape[1], self.reservoir_size) if h0 is None else h0
        rate_logit = torch.logit(torch.full((self.reservoir_size,), self.leak_rate,
                                            dtype=x.dtype), eps=1e-12)
        params = (self.weight_ih, self.weight_hh, self.bias, None, rate_logit)
        with torch.no_grad():
            out, _ = unroll(lambda xt, s: LeakyRNNCell.step(xt, s, params), x, RNNState(h0))
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.states(x))

    @torch.no_grad()
    def generate(self, prime: Tensor, steps: int) -> Tensor:
        """Free-running prediction: after `prime` (T, B, I), feed each output back as the next
        input for `steps` steps (needs output_size == input_size). Returns (steps, B, I)."""
        if self.readout.out_features != self.input_size:
            raise ValueError(f"generate needs output_size == input_size, got "
                             f"{self.readout.out_features} and {self.input_size}")
        h = self.states(prime)[-1]  # (B, H)
        y = self.readout(h)
        outputs = []
        for _ in range(steps):
            outputs.append(y)
            h = self.states(y.unsqueeze(0), h)[-1]
            y = self.readout(h)
        return torch.stack(outputs)

    def fit(self, x: Tensor, y: Tensor, ridge: float = 1e-8, washout: int = 100) -> dict[str, Any]:
        """Ridge regression of the readout on reservoir states, dropping `washout` steps.

        W_out = Y^T S (S^T S + ridge I)^-1 over S = [1, h_t] for t >= washout. Returns
        {"train_nrmse": ..., "seconds": ...}.
        """
        if y.shape[:2] != x.shape[:2]:
            raise ValueError(f"y must have x's leading (T, B) = {tuple(x.shape[:2])}, got "
                             f"{tuple(y.shape[:2])}")
        if not 0 <= washout < x.shape[0]:
            raise ValueError(f"washout must be in [0, T={x.shape[0]}), got {washout}")
        start = time.perf_counter()
        s = self.states(x)[washout:].reshape(-1, self.reservoir_size)  # (N, H)
        target = y[washout:].reshape(s.shape[0], -1).to(s.dtype)  # (N, O)
        s1 = torch.cat([s.new_ones(s.shape[0], 1), s], dim=1)  # (N, 1 + H)
        gram = s1.T @ s1 + ridge * torch.eye(s1.shape[1], dtype=s.dtype)
        w = torch.linalg.solve(gram, s1.T @ target).T  # (O, 1 + H)
        with torch.no_grad():
            self.readout.bias.copy_(w[:, 0])
            self.readout.weight.copy_(w[:, 1:])
        pred = s1 @ w.T
        nrmse = ((pred - target).pow(2).mean() / target.var()).sqrt().item()
        return {"train_nrmse": nrmse, "seconds": time.perf_counter() - start}
