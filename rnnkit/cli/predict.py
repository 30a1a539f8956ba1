"""`rnnkit predict RUN INPUT...`: a trained run's predictions for new inputs, by the run's task.

Each task has one predictor in `_PREDICTORS`, keyed by the checkpoint's model class: it turns
the INPUT arguments into predictions and returns one JSON-ready dict per prediction (`input`
and what the task predicts). Each prints as one tab-separated line; `--json` adds one JSON
object `{"predictions": [...]}` on the last line. A new task adds one function and one entry.

Classifiers: a text run takes texts (or lines of stdin); a series run takes `ucr:NAME` (every
series of that data set's test split), `ucr:NAME:INDEX` (one of them), `FILE.ts` or
`FILE.ts:INDEX`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="predict with a trained model (classify runs)",
        description="Print a trained run's predictions for each INPUT. classify runs of "
                    "texts: INPUTs are texts (default: the lines of stdin); of series: "
                    "ucr:NAME[:INDEX] (that data set's test split, or one series of it) or "
                    "FILE.ts[:INDEX]. music runs: MIDI files; prints the likeliest --top "
                    "notes of the frame that follows each.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="a run directory or checkpoint directory")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="what to predict for")
    p.add_argument("--top", type=int, default=1, help="classify: labels shown per input")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--json", action="store_true",
                   help="also print every prediction as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.train import checkpoint as ckpt

    where = ckpt.find_checkpoint(args.run_dir, args.checkpoint)
    task = ckpt.load_checkpoint_meta(where).get("model_class")
    predictor = _PREDICTORS.get(task)
    if predictor is None:
        raise UserError(f"run {args.run_dir!r} holds a {task!r} model; rnnkit predict serves "
                        f"{sorted(_PREDICTORS)} runs")
    rows = predictor(args, where)
    for row in rows:
        print("\t".join(_cell(v) for v in row.values()))
    if args.json:
        print(json.dumps({"predictions": rows}, ensure_ascii=False))
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, list):  # ranked (label, probability) pairs
        return "  ".join(f"{label} {p:.3f}" for label, p in value)
    return str(value)


_SERIES_INPUT = re.compile(r"(?P<source>.+?)(?::(?P<index>\d+))?")


def _series_inputs(spec: str) -> list[tuple[str, Any, str]]:
    """(name, (T, C) series, true label) for `ucr:NAME[:INDEX]` or `FILE.ts[:INDEX]`."""
    from rnnkit.cli import UserError
    from rnnkit.data.ts_files import UCR_PREFIX, load_ucr, read_ts

    m = _SERIES_INPUT.fullmatch(spec)
    source, index = m["source"], m["index"]
    if source.startswith(UCR_PREFIX):
        data = load_ucr(source, "test")
    elif source.lower().endswith(".ts"):
        data = read_ts(source)
    else:
        raise UserError(f"input {spec!r}: a series run takes ucr:NAME[:INDEX] or "
                        f"FILE.ts[:INDEX]")
    chosen = range(len(data)) if index is None else [int(index)]
    if index is not None and int(index) >= len(data):
        raise UserError(f"input {spec!r}: index {index} is past the last series "
                        f"({len(data) - 1}) of {source!r}")
    return [(f"{source}:{i}", data.series[i], data.labels[i]) for i in chosen]


def _predict_classifier(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    from rnnkit.cli import UserError
    from rnnkit.train.classify import load_run

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    run = load_run(where)
    if run.kind == "series":
        if not args.inputs:
            raise UserError("no inputs given: ucr:NAME[:INDEX] or FILE.ts[:INDEX]")
        items = [item for spec in args.inputs for item in _series_inputs(spec)]
        names, inputs, truth = zip(*items, strict=True)
    else:
        inputs = args.inputs or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not inputs:
            raise UserError("no texts given (arguments or stdin)")
        names, truth = inputs, None
    probs = run.probabilities(list(inputs))
    best = probs.topk(min(args.top, len(run.labels)), dim=-1)
    rows = []
    for n, (ps, idx) in enumerate(zip(best.values, best.indices, strict=True)):
        row: dict[str, Any] = {"input": names[n], "labels": [
            [run.labels[int(i)], round(float(p), 6)] for p, i in zip(ps, idx, strict=True)]}
        if truth is not None:
            row["true"] = truth[n]
        rows.append(row)
    return rows


def _predict_music(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    from rnnkit.train.music_eval import predict_next  # INPUTs: MIDI files

    return predict_next(where, args.inputs, args.top)


_PREDICTORS: dict[str, Callable[[argparse.Namespace, Path], list[dict[str, Any]]]] = {
    "SequenceClassifier": _predict_classifier,
    **dict.fromkeys(("PianoRollModel", "ConditionalPianoRoll"), _predict_music),
}
