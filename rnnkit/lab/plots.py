"""Pictures of gradient flow: a heat map of ||dL/dh_t|| over time steps and training steps, and
per-step curves for several models on one log axis. PNGs are written to a temporary name and
renamed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor

__all__ = ["plot_gradient_heatmap", "plot_gradient_profiles"]


def plot_gradient_heatmap(train_steps: Sequence[int], norms: Sequence[Tensor],
                          path: str | os.PathLike, title: str = "||dL/dh_t||") -> Path:
    """One row per recorded training step, one column per time step t, colour log10 of the
    norm: a vanishing gradient is a dark band on the left (early t) of every row."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not norms or len(norms) != len(train_steps):
        raise ValueError(f"need one norm curve per training step, got {len(norms)} curves for "
                         f"{len(train_steps)} steps")
    grid = np.log10(np.stack([n.double().clamp_min(1e-300).numpy() for n in norms]))
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="magma",
                      extent=(0, grid.shape[1], 0, grid.shape[0]))
    ax.set_yticks([i + 0.5 for i in range(len(train_steps))][:: max(1, len(train_steps) // 8)])
    ax.set_yticklabels([str(s) for s in train_steps][:: max(1, len(train_steps) // 8)])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log10 norm")
    return _save(fig, path)


def plot_gradient_profiles(curves: Mapping[str, Tensor], path: str | os.PathLike,
                           title: str = "||dL/dh_t|| for a loss on the last step") -> Path:
    """||dL/dh_t|| against t for each named model, log scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, norms in curves.items():
        ax.semilogy(range(len(norms)), norms.double().clamp_min(1e-300).tolist(), label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("norm")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)
    return out
