"""Run metrics: one JSON object per evaluation in metrics.jsonl, and the loss.png plot
(written by rank 0 alone when several processes train together)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rnnkit.train import distributed

__all__ = ["MetricsLog", "StepWindow", "read_metrics", "plot_losses"]


class MetricsLog:
    """Appends one JSON object per line to `path` (kept across resumes); on ranks other than
    0 of a multi-process run it writes nothing (their rows are rank 0's, averaged)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        if not distributed.is_main():
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop rows past `step` (rows a crashed run wrote after its last checkpoint); the file
        is rewritten to a temporary name and renamed."""
        if not distributed.is_main() or not self.path.exists():
            return
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, self.path)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl; a last line cut short by a kill is left out."""
    with open(path, encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    rows = []
    for n, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if n == len(lines) - 1 and not line.endswith("\n"):
                break
            raise ValueError(f"{str(path)!r} line {n + 1} is not JSON: {err}") from err
    return rows


def plot_losses(metrics_path: str | os.PathLike, out_path: str | os.PathLike,
                title: str = "loss") -> Path | None:
    """Plot train and validation loss against step from metrics.jsonl; None if nothing to plot
    (or on a rank other than 0)."""
    if not distributed.is_main():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(metrics_path) if Path(metrics_path).exists() else []
    if not rows:
        return None
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for split in sorted({r["split"] for r in rows}):
        pts = [(r["step"], r["loss"]) for r in rows if r["split"] == split]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out_path)
    fig.savefig(out, dpi=100)
    return out


class StepWindow:
    """Statistics of the training steps since the last evaluation."""

    def __init__(self) -> None:
        self.steps = 0
        self.loss_sum = 0.0
        self.tokens = 0
        self.train_seconds = 0.0
        self.norm_clipped = 0
        self.value_frac_sum = 0.0

    def add_loss(self, loss: float, tokens: int) -> None:
        self.steps += 1
        self.loss_sum += loss
        self.tokens += tokens

    def add_clip(self, norm_clipped: bool, value_frac: float) -> None:
        self.norm_clipped += int(norm_clipped)
        self.value_frac_sum += value_frac

    def mean_loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)

    def rate(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def norm_clip_fraction(self) -> float:
        return self.norm_clipped / max(self.steps, 1)

    def value_clip_fraction(self) -> float:
        return self.value_frac_sum / max(self.steps, 1)
