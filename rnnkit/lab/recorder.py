"""DiagnosticsRecorder: a Trainer callback that records the gradient diagnostics of a recurrent
layer every N training steps (one JSON line each) and draws them at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.lab.diagnostics import (
    gate_saturation,
    gradient_share,
    spectral_radius,
    state_gradient_norms,
)
from rnnkit.train.metrics import MetricsLog, read_metrics

__all__ = ["DiagnosticsRecorder", "DIAGNOSTICS_FILE", "HEATMAP_FILE", "PROFILE_FILE"]

DIAGNOSTICS_FILE = "diagnostics.jsonl"
HEATMAP_FILE = "gradients.png"
PROFILE_FILE = "gradient_profile.png"


class DiagnosticsRecorder:
    """Every `every` optimiser steps (and once before the first), the diagnostics of `layer`
    on one fixed probe batch, appended to `run_dir/diagnostics.jsonl`:

    - `grad_norm`: ||dL/dh_t|| for every step t of the probe (`state_gradient_norms`), with L
      the task's own loss on the probe batch;
    - `grad_share`: each step's share of their sum (`gradient_share`);
    - `gate_saturation`: per sigmoid gate, the fractions below 0.05 and above 0.95 (rk.LSTM and
      rk.GRU; null for other layers);
    - `spectral_radius`: per recurrent block of W_hh;
    - `probe_loss`: L on the probe batch.

    The probe leaves the trainer's state as it found it: parameter gradients are put back and
    no global random generator is drawn from. Attach it with `attach(trainer)` (after any
    `trainer.resume()`): a fresh run starts the file anew, a resumed one drops the rows past
    the step it resumes from.

    Args:
        layer: the unidirectional recurrent layer to watch (rk.RNN, rk.LSTM, ...).
        x: (T, B, I) probe input, as the layer receives it (after any embedding).
        loss_fn: maps the layer's outputs (T, B, H) on `x` to the scalar task loss.
        every: record every this many optimiser steps (>= 1).
        run_dir: the run directory the rows and plots go to.
        model: the module whose parameter gradients the probe must leave alone (the whole
            model when `loss_fn` uses more than the layer; default: the layer).
    """

    def __init__(self, layer: Any, x: Tensor, loss_fn: Callable[[Tensor], Tensor],
                 every: int, run_dir: str | os.PathLike, model: Any = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number of steps >= 1, got {every!r}")
        if not isinstance(x, Tensor) or x.dim() != 3:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a (T, B, I) probe batch, got {got}")
        self.layer, self.x, self.loss_fn, self.every = layer, x.detach(), loss_fn, every
        self.model = layer if model is None else model
        self.run_dir = Path(run_dir)
        self.log = MetricsLog(self.run_dir / DIAGNOSTICS_FILE)

    def record(self, step: int) -> dict[str, Any]:
        """Measure the diagnostics now and append them as the row of training step `step`."""
        params = list(self.model.parameters())
        saved = [p.grad for p in params]
        for p in params:
            p.grad = None  # backward accumulates in place: keep the trainer's tensors apart
        losses: list[float] = []

        def task_loss(out: Tensor) -> Tensor:
            loss = self.loss_fn(out)
            losses.append(loss.item())
            return loss

        try:
            norms = state_gradient_norms(self.layer, self.x, task_loss)
        finally:
            for p, g in zip(params, saved, strict=True):
                p.grad = g
        try:
            saturation = gate_saturation(self.layer, self.x)
        except ValueError:
            saturation = None  # a layer without sigmoid gates (plain RNN, IRNN)
        row = {"step": step, "probe_loss": losses[0], "grad_norm": norms.tolist(),
               "grad_share": gradient_share(norms).tolist(), "gate_saturation": saturation,
               "spectral_radius": spectral_radius(self.layer)}
        self.log.write(row)
        return row

    def attach(self, trainer: Any) -> None:
        """Record from `trainer`'s step hook every `every` steps (keeping any hook already
        there); records the starting point now."""
        self.log.truncate_after(trainer.step - 1)  # a resumed run measures its step again
        if trainer.step % self.every == 0:
            self.record(trainer.step)
        previous = trainer.hook

        def hook(phase: str, step: int) -> None:
            if previous is not None:
                previous(phase, step)
            if phase == "step" and step % self.every == 0:
                self.record(step)

        trainer.hook = hook

    def plot(self, title: str = "") -> list[Path]:
        """Write the heat map (time step x training step, log colour) and the per-step curves
        (first, middle and last record) from the rows on file; returns the PNGs written."""
        from rnnkit.lab.plots import plot_gradient_heatmap, plot_gradient_profiles

        path = self.run_dir / DIAGNOSTICS_FILE
        rows = read_metrics(path) if path.exists() else []
        if not rows:
            return []
        steps = [r["step"] for r in rows]
        norms = [torch.tensor(r["grad_norm"], dtype=torch.float64) for r in rows]
        name = f"{title}: " if title else ""
        heat = plot_gradient_heatmap(steps, norms, self.run_dir / HEATMAP_FILE,
                                     title=f"{name}||dL/dh_t|| during training")
        picks = sorted({0, len(rows) // 2, len(rows) - 1})
        curves = plot_gradient_profiles({f"step {steps[i]}": norms[i] for i in picks},
                                        self.run_dir / PROFILE_FILE,
                                        title=f"{name}||dL/dh_t|| on the probe batch")
        return [heat, curves]
