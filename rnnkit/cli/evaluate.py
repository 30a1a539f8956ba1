"""`rnnkit eval RUN_DIR --test PAIRS`: exact match, token accuracy and BLEU of a Seq2Seq run."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score a trained seq2seq model on test pairs",
        description="Decode the sources of --test, compare with the targets, print exact "
                    "match, token accuracy and BLEU, and append a 'test' row to the run's "
                    "metrics.jsonl.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or checkpoint directory")
    p.add_argument("--test", required=True, help="pairs file (TSV or SCAN lines, .gz too)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="score = log-prob / length ** this")
    p.add_argument("--max-len", type=int, default=0, help="longest output (0: the run's)")
    p.add_argument("--batch-size", type=int, default=128, help="pairs decoded at once")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--output", default=None, help="also write the outputs to this file")
    p.add_argument("--encoding", default="utf-8", help="text encoding of --test")
    from rnnkit.train import forecast_eval  # forecasting runs: rnnkit/train/forecast_eval.py
    forecast_eval.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from rnnkit.cli import UserError
    from rnnkit.cli.translate import _check_decoding_args
    from rnnkit.data.pairs import PAD, PairBatches, encode_pairs, read_pairs
    from rnnkit.train import checkpoint as ckpt
    from rnnkit.train import forecast_eval
    from rnnkit.train.metrics import MetricsLog
    from rnnkit.train.seq2seq import evaluate_pairs, load_seq2seq

    if forecast_eval.is_forecast_run(args.run_dir):
        return forecast_eval.run(args)
    _check_decoding_args(args)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    where = ckpt.find_checkpoint(args.run_dir, args.checkpoint)
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
    run_dir = Path(args.run_dir) if where != Path(args.run_dir) else where.parent
    MetricsLog(run_dir / "metrics.jsonl").write(
        {"step": meta.get("step", 0), "split": "test", "loss": total / count, **scores,
         "beam": args.beam, "test": str(args.test), "checkpoint": where.name})
    return 0
