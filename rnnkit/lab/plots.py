"""Pictures of gradient flow: a heat map of ||dL/dh_t|| over time steps and training steps, and
per-step curves for several models on one log axis, and validation-loss curves of several runs
against a task's baseline. PNGs are written to a temporary name and
renamed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor

__all__ = ["plot_gradient_heatmap", "plot_gradient_profiles", "plot_loss_curves"]


def plot_gradient_heatmap(train_steps: Sequence[int], norms: Sequence[Tensor],
                          path: str | os.PathLike, title: str = "||dL/dh_t||") -> Path:
    """One row per recorded training step, one column per time step t, colour log10 of the
    norm: a vanishing gradient is a dark band on the left (early t) of every row."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not norms or len(norms) != len(train_steps):
        raise ValueError(f"need one norm curve per training step, got {len(norms)} curves for "
                         f"{len(train_steps)} steps")
    grid = np.stack([n.double().numpy() for n in norms])
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.ma.masked_invalid(np.where(grid > 0, np.log10(grid), np.nan))
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="lightgrey")
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest",
                      extent=(0, grid.shape[1], 0, grid.shape[0]))
    ax.set_yticks([i + 0.5 for i in range(len(train_steps))][:: max(1, len(train_steps) // 8)])
    ax.set_yticklabels([str(s) for s in train_steps][:: max(1, len(train_steps) // 8)])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log10 norm (grey: exactly 0)")
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
        values = [v if v > 0 else float("nan") for v in norms.double().tolist()]  # 0: no point
        ax.semilogy(range(len(norms)), values, label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("norm")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def plot_loss_curves(curves: Mapping[str, Sequence[tuple[int, float]]], baseline: float,
                     path: str | os.PathLike, title: str = "validation loss",
                     target: float | None = None) -> Path:
    """Validation loss against training step for each named run, log scale, with the task's
    no-memory baseline (dashed) and, when given, the loss that counts as solved (dotted)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, points in curves.items():
        kept = [(s, v) for s, v in points if v > 0 and v == v and v != float("inf")]
        ax.semilogy([s for s, _ in kept], [v for _, v in kept], marker="o", markersize=2,
                    label=name)
    ax.axhline(baseline, color="black", linestyle="--", linewidth=1,
               label=f"no-memory baseline {baseline:.4g}")
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", linewidth=1,
                   label=f"solved below {target:.3g}")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)
    return out
