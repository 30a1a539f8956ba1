"""The ListOps results table: test accuracy per depth of several runs beside the majority-class
baseline, as markdown (`rnnkit lab listops-table RUN...`); `evaluate_run` tests a run's best
checkpoint when the run has no test.json (e.g. it was stopped before the end)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["evaluate_run", "load_result", "listops_table", "write_table"]


def evaluate_run(run: str | os.PathLike) -> dict[str, Any]:
    """Test the best (else the last) checkpoint of a ListOps run at every depth; returns what
    `main` writes to test.json."""
    from rnnkit.lab.listops import ListOpsConfig, ListOpsModel, _test, depth_test_sets
    from rnnkit.train.checkpoint import load_checkpoint_meta, load_model_weights
    from rnnkit.train.config import config_from_dict

    root = Path(run)
    ckpt = next((root / n for n in ("best", "last") if (root / n / "config.json").exists()),
                None)
    if ckpt is None:
        raise FileNotFoundError(f"run {str(root)!r} has no checkpoint (best/ or last/) and no "
                                "test.json; is it a `rnnkit lab listops` run?")
    meta = load_checkpoint_meta(ckpt)
    if meta.get("model_class") != "ListOpsModel":
        raise ValueError(f"checkpoint {str(ckpt)!r} holds a {meta.get('model_class')!r}, not a "
                         "ListOpsModel; expected a `rnnkit lab listops` run")
    cfg = config_from_dict(ListOpsConfig, meta["run_config"])
    model = ListOpsModel(**meta["model_args"])
    load_model_weights(ckpt, model)
    model.eval()
    return _test(model, cfg, depth_test_sets(cfg))


def load_result(run: str | os.PathLike) -> dict[str, Any]:
    """A run's test.json, or a fresh evaluation of its checkpoint when there is none."""
    from rnnkit.lab.listops import TEST_FILE

    path = Path(run) / TEST_FILE
    if not Path(run).is_dir():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist")
    if not path.exists():
        return evaluate_run(run)
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from err
    if not isinstance(result, dict) or not isinstance(result.get("test_accuracy"), dict):
        raise ValueError(f"{str(path)!r} has no 'test_accuracy' object; expected the test.json "
                         "that `rnnkit lab listops` writes")
    return result


def listops_table(runs: list[str | os.PathLike]) -> str:
    """Markdown: one row per test depth, the majority-class baseline, one column per run."""
    if not runs:
        raise ValueError("no runs given")
    results = [load_result(r) for r in runs]
    prints = {r.get("test_fingerprint") for r in results}
    note = "" if len(prints) == 1 else \
        "\n\nWarning: the runs were tested on different test sets (task settings differ).\n"
    names = [f"{r['model']} ({Path(run).name})" for r, run in zip(results, runs, strict=True)]
    train_depth = results[0].get("train_depth")
    depths = sorted({int(d) for r in results for d in r["test_accuracy"]})
    lines = ["| depth | majority class | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for d in depths:
        seen = "" if train_depth is None or d <= train_depth else " (unseen)"
        base = results[0]["majority_baseline"].get(str(d))
        cells = [_pct(r["test_accuracy"].get(str(d))) for r in results]
        lines.append(f"| {d}{seen} | {_pct(base)} | " + " | ".join(cells) + " |")
    lines.append("| valid (depth <= train depth) | | "
                 + " | ".join(_pct(r.get("valid_accuracy")) for r in results) + " |")
    lines.append("| steps | | " + " | ".join(str(r.get("steps", "")) for r in results) + " |")
    lines.append("| training time (min) | | " + " | ".join(
        f"{r['train_wall_s'] / 60:.1f}" if "train_wall_s" in r else "" for r in results) + " |")
    size = results[0].get("test_size")
    head = f"Test accuracy per depth ({size} expressions per depth)" if size else \
        "Test accuracy per depth"
    return head + ":\n\n" + "\n".join(lines) + "\n" + note


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def write_table(text: str, path: str | os.PathLike) -> Path:
    """Write `text` to `path` through a temporary file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p
