"""`rnnkit predict RUN INPUT...`: a trained run's predictions for new inputs, by the run's task.

Each task has one predictor in `_PREDICTORS`, keyed by the checkpoint's model class: it turns
the INPUT arguments into predictions and returns one JSON-ready dict per prediction (`input`
and what the task predicts). Each prints as one tab-separated line; `--json` adds one JSON
object `{"predictions": [...]}` on the last line. A new task adds one function and one entry.

Classifiers: a text run takes texts (or lines of stdin); a series run takes `ucr:NAME` (every
series of that data set's test split), `ucr:NAME:INDEX` (one of them), `FILE.ts` or
`FILE.ts:INDEX`. An image run takes `FILE-images-idx3-ubyte[.gz][:INDEX]` (its labels file
beside it is optional), `fashion-mnist[:INDEX]`, `digits[:INDEX]` or `DIR[:INDEX]` (test parts).
A tag run takes sentences. Language models, seq2seq, forecasters and music:
rnnkit/cli/predict_tasks.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnkit.cli import predict_tasks

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="predict with a trained model (every task)",
        description="Print a trained run's prediction for each INPUT (default: the lines of "
                    "stdin), one line each. classify runs of texts: INPUTs are texts; of "
                    "series: ucr:NAME[:INDEX] (that data set's test split, or one series of "
                    "it) or FILE.ts[:INDEX]; of images: FILE-images-idx3-ubyte[.gz][:INDEX] "
                    "(labels beside it optional), fashion-mnist[:INDEX] or digits[:INDEX]. tag "
                    "runs: INPUTs are sentences, printed with each token's tag. lm runs: "
                    "INPUTs are prompts, each continued by "
                    "--length sampled tokens. seq2seq runs: INPUTs are source lines, each "
                    "decoded (greedy, or --beam N). forecast runs: INPUTs are CSV files "
                    "holding the run's column (or a bundled series name): the --steps values "
                    "after their last row. music runs: INPUTs are frames of MIDI pitches "
                    "('60,64,67 62,65 -': commas join a frame's notes, '-' is silence), each "
                    "continued by --length sampled frames, or MIDI files: the likeliest --top "
                    "notes of the frame after each (per style for a conditional run).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="a run directory or checkpoint directory")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="what to predict for")
    p.add_argument("--top", type=int, default=1, help="classify: labels shown per input")
    p.add_argument("--length", type=int, default=200,
                   help="lm: tokens generated per prompt; music: frames per prime")
    p.add_argument("--temperature", type=float, default=None,
                   help="lm: sampling temperature (default 0.8; 0: greedy); seq2seq: sample "
                        "with it instead of the argmax (default 0); music: (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="lm: sample among the k likeliest")
    p.add_argument("--top-p", type=float, default=1.0, help="lm: nucleus sampling mass")
    p.add_argument("--skip-unknown", action="store_true",
                   help="lm: drop prompt tokens the model's vocabulary lacks")
    p.add_argument("--seed", type=int, default=None,
                   help="lm, seq2seq, music: seed for sampling (input n of lm and music "
                        "uses seed + n)")
    p.add_argument("--beam", type=int, default=1, help="seq2seq: beam size (1: greedy)")
    p.add_argument("--n-best", type=int, default=1, help="seq2seq: outputs per input")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="seq2seq: score = log-prob / length ** this")
    p.add_argument("--max-len", type=int, default=0,
                   help="seq2seq: longest output (0: the run's)")
    p.add_argument("--steps", type=int, default=0,
                   help="forecast: values forecast per series (0: the run's horizon)")
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
                        f"runs of {sorted(_PREDICTORS)}")
    rows = predictor(args, where)
    for row in rows:
        print("\t".join(_cell(v) for v in row.values()))
    if args.json:
        print(json.dumps({"predictions": rows}, ensure_ascii=False))
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):  # ranked pairs
        return "  ".join(f"{label} {p:.3f}" for label, p in value)
    if isinstance(value, list):  # a forecast
        return " ".join(f"{v:.6g}" for v in value)
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


def _predict_tagger(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    from rnnkit.cli import UserError
    from rnnkit.train.tag import predict

    texts = args.inputs or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UserError("no sentences given (arguments or stdin)")
    return predict(where, texts)


def _predict_images(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    from rnnkit.cli import UserError
    from rnnkit.train.classify_images import image_inputs, load_image_run

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    if not args.inputs:
        raise UserError("no inputs given: FILE-images-idx3-ubyte[.gz][:INDEX], "
                        "fashion-mnist[:INDEX], digits[:INDEX] or DIR[:INDEX]")
    run = load_image_run(where)
    rows = []
    for spec in args.inputs:
        names, data = image_inputs(spec, run.meta.get("run_config", {}))
        best = run.probabilities(data).topk(min(args.top, len(run.labels)), dim=-1)
        for n, (ps, idx) in enumerate(zip(best.values, best.indices, strict=True)):
            rows.append({"input": names[n], "labels": [
                [run.labels[int(i)], round(float(p), 6)] for p, i in zip(ps, idx, strict=True)],
                "true": run.labels[int(data.labels[n])] if data.labels[n] >= 0 else None})
    return rows


def _predict_music_any(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    """Music runs: MIDI files (`.mid`, `.midi`) give the likeliest --top notes of the next
    frame (per style for a conditional run); frames of MIDI pitches are continued by --length
    sampled frames (`predict_tasks.predict_music`, unconditional runs)."""
    from rnnkit.cli import UserError
    from rnnkit.train.music_eval import predict_next

    midi = [s.lower().endswith((".mid", ".midi")) for s in args.inputs]
    if args.inputs and all(midi):
        return predict_next(where, args.inputs, args.top)
    if any(midi):
        raise UserError("give either MIDI files or frames of MIDI pitches, not both")
    return predict_tasks.predict_music(args, where)


_PREDICTORS: dict[str, Callable[[argparse.Namespace, Path], list[dict[str, Any]]]] = {
    "SequenceClassifier": _predict_classifier,
    "WordCharTagger": _predict_tagger,
    "ImageClassifier": _predict_images,
    "LanguageModel": predict_tasks.predict_language_model,
    "Seq2Seq": predict_tasks.predict_seq2seq,
    "Forecaster": predict_tasks.predict_forecaster,
    **dict.fromkeys(("PianoRollModel", "ConditionalPianoRoll"), _predict_music_any),
}
