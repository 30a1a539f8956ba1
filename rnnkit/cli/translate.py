"""`rnnkit translate RUN_DIR`: decode lines with a trained Seq2Seq; optional attention plot."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

__all__ = ["add_parser", "run", "plot_attention"]


def _check_decoding_args(args: argparse.Namespace) -> None:
    """--beam >= 1, --max-len >= 0, a finite --length-penalty (shared with `rnnkit eval`)."""
    from rnnkit.cli import UserError

    if args.beam < 1:
        raise UserError(f"--beam must be >= 1, got {args.beam}")
    if args.max_len < 0:
        raise UserError(f"--max-len must be >= 0 (0: the run's), got {args.max_len}")
    if not abs(args.length_penalty) < float("inf"):
        raise UserError(f"--length-penalty must be finite, got {args.length_penalty}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "translate", help="decode lines with a trained seq2seq model",
        description="Read source lines from --input or stdin and print one output per line "
                    "(with --n-best, N tab-separated 'score<TAB>output' lines per input).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or checkpoint directory")
    p.add_argument("--input", default=None, help="file of source lines (default: stdin)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--n-best", type=int, default=1, help="outputs per input (<= --beam)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="score = log-prob / length ** this")
    p.add_argument("--max-len", type=int, default=0,
                   help="longest output (0: the run's default)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sample with this temperature instead of taking the argmax (beam 1)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--plot-attention", default=None, metavar="OUT.png",
                   help="draw the alignment matrix of each input (up to 6)")
    p.set_defaults(func=run)


def plot_attention(maps: Sequence[Tensor], sources: Sequence[list[str]],
                   outputs: Sequence[list[str]], path: str | Path) -> Path:
    """Draw attention matrices (output steps x source tokens) side by side into `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(maps)
    width = sum(max(2.0, 0.35 * len(s) + 1.5) for s in sources)
    height = max(2.5, 0.3 * max(len(o) for o in outputs) + 1.5)
    fig = Figure(figsize=(min(width, 40), min(height, 30)))
    FigureCanvasAgg(fig)
    for i, (m, src, out) in enumerate(zip(maps, sources, outputs, strict=True)):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(m[:len(out), :len(src)].numpy(), cmap="Greys", vmin=0.0, vmax=1.0,
                  aspect="auto")
        ax.set_xticks(range(len(src)), src, rotation=90, fontsize=7)
        ax.set_yticks(range(len(out)), out, fontsize=7)
        ax.set_xlabel("source")
        if i == 0:
            ax.set_ylabel("output")
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    return Path(path)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.data.text_files import read_text_file
    from rnnkit.train.seq2seq import load_seq2seq, translate

    _check_decoding_args(args)
    if not 1 <= args.n_best <= args.beam:
        raise UserError(f"--n-best must be in [1, --beam={args.beam}], got {args.n_best}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0 (0: argmax), got {args.temperature}")
    model, src_vocab, tgt_vocab, meta = load_seq2seq(args.run_dir, args.checkpoint)
    if args.plot_attention and model.attention is None:
        raise UserError("--plot-attention needs a model with attention, this one has "
                        "attention='none'")
    text = read_text_file(args.input, what="input file") if args.input else sys.stdin.read()
    sources = [s for s in (line.split("\t")[0] for line in text.split("\n")) if s.strip()]
    hyps = translate(model, src_vocab, sources, args.beam, args.n_best,
                     args.max_len or meta.get("max_len", 100), args.length_penalty,
                     with_attention=bool(args.plot_attention), temperature=args.temperature,
                     seed=args.seed)
    for row in hyps:
        for h in row:
            text = tgt_vocab.join([tgt_vocab.tokens[t] for t in h.tokens])
            print(f"{h.score:.4f}\t{text}" if args.n_best > 1 else text)
    if args.plot_attention and hyps:
        shown = list(range(min(6, len(hyps))))
        outs = [[tgt_vocab.tokens[t] for t in hyps[i][0].tokens] +
                (["</s>"] if hyps[i][0].finished else []) for i in shown]
        path = plot_attention([hyps[i][0].attention for i in shown],
                              [src_vocab.tokenize(sources[i]) for i in shown], outs,
                              args.plot_attention)
        print(f"attention plot: {path}", file=sys.stderr)
    return 0
