"""`compare`: several cells (and clipping settings) trained one after the other on the same
task, budget and seed; a markdown table of the results and one plot of every loss curve
against the task's baseline."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rnnkit.lab.experiments import CELLS, LabConfig, baseline, is_solved, main, solved_below
from rnnkit.lab.plots import plot_loss_curves
from rnnkit.train.metrics import read_metrics
from rnnkit.train.trainer import TrainingDivergedError

__all__ = ["compare", "run_name", "RESULTS_FILE", "CURVES_FILE"]

RESULTS_FILE = "results.md"
CURVES_FILE = "losses.png"


def run_name(cell: str, clip: float, several_clips: bool) -> str:
    """The sub-folder of one run: the cell, plus its clipping when several are compared."""
    if not several_clips:
        return cell
    return f"{cell}-clip{clip:g}" if clip > 0 else f"{cell}-noclip"


def compare(config: LabConfig, cells: Sequence[str], out: str | os.PathLike,
            clips: Sequence[float] | None = None,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train each cell of `cells` under each gradient-clipping norm of `clips` (0: off;
    default: `config.clip_norm`) on `config`'s task with its budget and seed, one run after
    the other in `out/<cell>` (`out/<cell>-clip<c>` / `out/<cell>-noclip` when several clips
    are compared). After each run, `out/results.md` (a markdown table) and `out/losses.png`
    (validation loss curves against the baseline) are rewritten. A run that diverges (too many
    non-finite steps) is reported as such and the comparison goes on.

    Ctrl-C stops the run in progress at a step boundary (see `Trainer.fit`) and the
    comparison with it; `config.resume` continues every run where it stopped (a finished run
    stops at once), so a comparison can also be tabled from runs trained separately.

    Returns one row per run: cell, clip, final valid loss and error rate, the best
    checkpoint's test loss and error rate, baseline, solved (on the test),
    steps, seconds of training (across resumes), diverged, interrupted.
    """
    cells = list(cells)
    unknown = [c for c in cells if c not in CELLS]
    if not cells or unknown or len(set(cells)) != len(cells):
        raise ValueError(f"cells must be distinct names from {list(CELLS)}, got {cells}")
    clips = [config.clip_norm] if clips is None else list(clips)
    if not clips or len(set(clips)) != len(clips) or any(not 0 <= c < float("inf")
                                                         for c in clips):
        raise ValueError(f"clips must be distinct clipping norms >= 0 (0: off), got {clips}")
    out = Path(out)
    T = 64 if config.task == "pixels" else config.T
    rows: list[dict[str, Any]] = []
    for clip in clips:
        for cell in cells:
            name = run_name(cell, clip, len(clips) > 1)
            run_cfg = dataclasses.replace(config, cell=cell, clip_norm=clip,
                                          out=str(out / name))
            log(f"== {name} ({len(rows) + 1}/{len(cells) * len(clips)})")
            rows.append(_run(run_cfg, name, T, log))
            _write_results(out, config, T, rows)
            if rows[-1]["interrupted"]:
                log(f"comparison interrupted at {name}; continue it with --resume")
                return rows
    return rows


def _run(cfg: LabConfig, name: str, T: int, log: Callable[[str], None]) -> dict[str, Any]:
    start = time.perf_counter()
    row: dict[str, Any] = {"run": name, "cell": cfg.cell, "clip": cfg.clip_norm,
                           "baseline": baseline(cfg.task, T), "diverged": False,
                           "interrupted": False}
    try:
        summary = main(cfg, log=log)
    except TrainingDivergedError as err:
        log(f"{name} diverged: {err}")
        valid = [r for r in _metrics(Path(cfg.out)) if r["split"] == "valid"]
        last = valid[-1] if valid else {"loss": float("nan"), "error_rate": float("nan"),
                                        "step": 0}
        row.update(diverged=True, loss=last["loss"], error_rate=last["error_rate"],
                   test_loss=float("nan"), test_error_rate=float("nan"),
                   steps=last["step"], solved=False,
                   seconds=last.get("elapsed_s", time.perf_counter() - start))
    else:
        row.update(loss=summary["final_valid_loss"], error_rate=summary["final_error_rate"],
                   test_loss=summary["test_loss"], test_error_rate=summary["test_error_rate"],
                   steps=summary["step"], seconds=summary["elapsed_s"],
                   interrupted=summary["stop_reason"] == "interrupted",
                   solved=is_solved(cfg.task, T, summary["test_loss"],
                                    summary["test_error_rate"]))
    return row


def _metrics(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    return read_metrics(path) if path.exists() else []


def _write_results(out: Path, config: LabConfig, T: int, rows: list[dict[str, Any]]) -> None:
    """results.md and losses.png for the runs so far (temporary name + rename)."""
    base = rows[0]["baseline"]
    budget = [f"max_steps={config.max_steps}"] if config.max_steps else []
    if config.time_budget:
        budget.append(f"time_budget={config.time_budget:g} min")
    tested = "the held-out digits" if config.task == "pixels" else \
        f"{config.test_size:,} fresh sequences"
    lines = [f"# {config.task}, T = {T}: {len(rows)} run(s)", "",
             f"H = {config.hidden_size}, batch {config.batch_size}, {config.optimizer} lr "
             f"{config.lr:g}, {', '.join(budget)}, seed {config.seed}; no-memory baseline "
             f"{base:.4f}. Test: the best checkpoint (lowest validation loss) on "
             f"{tested}; solved? judges the test.", "",
             "| run | cell | clip | final valid loss | error rate | test loss | test error rate "
             "| baseline | solved? | steps | training time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        solved = ("diverged" if r["diverged"] else "interrupted" if r["interrupted"]
                  else "yes" if r["solved"] else "no")
        clip = f"{r['clip']:g}" if r["clip"] > 0 else "off"
        lines.append(f"| {r['run']} | {r['cell']} | {clip} | {r['loss']:.4g} | "
                     f"{r['error_rate']:.3f} | {r['test_loss']:.4g} | "
                     f"{r['test_error_rate']:.4f} | {r['baseline']:.4f} | {solved} | "
                     f"{r['steps']} | {r['seconds']:.0f} |")
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    curves = {r["run"] + (" (diverged)" if r["diverged"] else ""):
              [(m["step"], m["loss"]) for m in _metrics(out / r["run"]) if m["split"] == "valid"]
              for r in rows}
    plot_loss_curves(curves, base, out / CURVES_FILE,
                     title=f"{config.task}, T = {T}: validation loss",
                     target=solved_below(config.task, T))
