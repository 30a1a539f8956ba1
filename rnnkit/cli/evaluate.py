"""`rnnkit eval RUN_DIR --test DATA`: score a trained run on test data, by the run's task.

Each task has one scorer in `_SCORERS`, keyed by the checkpoint's model class: it prints its
metrics for a person and returns them as a dict (metric names as keys); `--json` then prints
that dict as one JSON object on the last line. Every scorer appends a 'test' row to the run's
metrics.jsonl. A new task adds one function and one entry.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score a trained model on test data (seq2seq, classify, forecast, music)",
        description="Score a run on --test and append a 'test' row to its metrics.jsonl. "
                    "seq2seq runs: decode the sources of a pairs file and print exact match, "
                    "token accuracy and BLEU. classify runs: print accuracy and macro F1 on "
                    "a text<TAB>label file, a .ts series file, ucr:NAME (its test split) or "
                    "the built-in set the run trained on (its test part); image runs: on "
                    "fashion-mnist, digits (the run's test part), a directory of idx files "
                    "(its t10k files) or an images idx file. forecast runs: "
                    "forecast past the training series and print MAE and MASE next to the "
                    "seasonal-naive and persistence baselines. music runs: NLL per frame "
                    "and frame accuracy on the test split of jsb, nottingham or a .mat file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or checkpoint directory")
    p.add_argument("--test", required=True,
                   help="test data: a pairs file (seq2seq; TSV or SCAN lines, .gz too), or "
                        "labelled examples (classify)")
    p.add_argument("--json", action="store_true",
                   help="also print the metrics as one JSON object on the last line")
    p.add_argument("--beam", type=int, default=1, help="seq2seq: beam size (1: greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="seq2seq: score = log-prob / length ** this")
    p.add_argument("--max-len", type=int, default=0,
                   help="seq2seq: longest output (0: the run's)")
    p.add_argument("--batch-size", type=int, default=128, help="examples scored at once")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--output", default=None, help="seq2seq: also write the outputs here")
    p.add_argument("--encoding", default="utf-8", help="text encoding of --test")
    from rnnkit.train import forecast_eval  # forecasting runs: rnnkit/train/forecast_eval.py
    forecast_eval.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.train import checkpoint as ckpt
    from rnnkit.train import forecast_eval
    from rnnkit.train.metrics import MetricsLog

    if forecast_eval.is_forecast_run(args.run_dir):  # its own scorer, baselines and plot
        return forecast_eval.run(args)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    where = ckpt.find_checkpoint(args.run_dir, args.checkpoint)
    meta = ckpt.load_checkpoint_meta(where)
    task = meta.get("model_class")
    scorer = _SCORERS.get(task)
    if scorer is None:
        raise UserError(f"run {args.run_dir!r} holds a {task!r} model; rnnkit eval scores "
                        f"{sorted(_SCORERS)} runs")
    scores, extra = scorer(args, where, meta)
    run_dir = Path(args.run_dir) if where != Path(args.run_dir) else where.parent
    MetricsLog(run_dir / "metrics.jsonl").write(
        {"step": meta.get("step", 0), "split": "test", **scores, **extra,
         "test": str(args.test), "checkpoint": where.name})
    if args.json:
        print(json.dumps(scores))
    return 0


Scores = tuple[dict[str, Any], dict[str, Any]]  # (metrics, extra fields for metrics.jsonl)


def _score_seq2seq(args: argparse.Namespace, where: Path, meta: dict[str, Any]) -> Scores:
    import torch

    from rnnkit.cli import UserError
    from rnnkit.cli.translate import _check_decoding_args
    from rnnkit.data.pairs import PAD, PairBatches, encode_pairs, read_pairs
    from rnnkit.train.seq2seq import evaluate_pairs, load_seq2seq

    _check_decoding_args(args)
    model, src_vocab, tgt_vocab, meta = load_seq2seq(where)
    pairs = read_pairs(args.test, args.encoding)
    if not pairs:
        raise UserError(f"--test {args.test!r} holds no pairs")
    scores, outputs = evaluate_pairs(model, src_vocab, tgt_vocab, pairs, args.beam,
                                     args.max_len or meta.get("max_len", 100),
                                     args.length_penalty, args.batch_size)
    batches = PairBatches(encode_pairs(pairs, src_vocab, tgt_vocab), args.batch_size,
                          shuffle=False)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(len(batches)):
            b = batches.batch(i)
            n = int((b.tgt_out != PAD).sum())
            total += model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out).item() * n
            count += n
    print(f"pairs: {len(pairs)}  beam: {args.beam}")
    print(f"exact match: {100 * scores['exact_match']:.2f}%")
    print(f"token accuracy: {100 * scores['token_accuracy']:.2f}%")
    print(f"BLEU: {scores['bleu']:.2f}")
    print(f"loss: {total / count:.4f}")
    if args.output:
        Path(args.output).write_text("".join(o + "\n" for o in outputs), encoding="utf-8")
    return {"loss": total / count, **scores}, {"beam": args.beam}


def _score_classifier(args: argparse.Namespace, where: Path, meta: dict[str, Any]) -> Scores:
    from rnnkit.train.classify import evaluate_run

    scores = evaluate_run(where, args.test, args.encoding, batch_size=args.batch_size)
    print(f"examples: {scores['examples']}")
    print(f"accuracy: {100 * scores['accuracy']:.2f}%")
    print(f"macro F1: {scores['f1']:.4f}")
    print(f"loss: {scores['loss']:.4f}")
    return scores, {}


def _score_tagger(args: argparse.Namespace, where: Path, meta: dict[str, Any]) -> Scores:
    from rnnkit.train.tag import evaluate_run

    s = evaluate_run(where, args.test, args.encoding, batch_size=args.batch_size)
    print(f"sentences: {s['sentences']}  tokens: {s['tokens']}")
    print(f"entities: precision {s['precision']:.4f}  recall {s['recall']:.4f}  "
          f"f1 {s['f1']:.4f}")
    print(f"token accuracy: {100 * s['accuracy']:.2f}%")
    print(f"loss: {s['loss']:.4f}")
    for kind, t in s["per_type"].items():
        print(f"  {kind:<20} precision {t['precision']:.4f}  recall {t['recall']:.4f}  "
              f"f1 {t['f1']:.4f}  support {t['support']}")
    scores = {k: s[k] for k in ("precision", "recall", "f1", "accuracy", "loss")}
    return {**scores, "per_type": s["per_type"]}, {"sentences": s["sentences"]}


def _score_images(args: argparse.Namespace, where: Path, meta: dict[str, Any]) -> Scores:
    from rnnkit.train.classify_images import evaluate_image_run

    scores = evaluate_image_run(where, args.test, batch_size=args.batch_size)
    print(f"images: {scores['examples']}")
    print(f"accuracy: {100 * scores['accuracy']:.2f}%")
    print(f"macro F1: {scores['f1']:.4f}")
    print(f"loss: {scores['loss']:.4f}")
    return scores, {}
def _score_music(args: argparse.Namespace, where: Path, meta: dict[str, Any]) -> Scores:
    from rnnkit.train.music_eval import score  # --test jsb | nottingham | FILE.mat

    return score(args, where, meta)


_SCORERS: dict[str, Callable[[argparse.Namespace, Path, dict[str, Any]], Scores]] = {
    "Seq2Seq": _score_seq2seq,
    "SequenceClassifier": _score_classifier,
    "WordCharTagger": _score_tagger,
    "ImageClassifier": _score_images,
    **dict.fromkeys(("PianoRollModel", "ConditionalPianoRoll"), _score_music),
}
