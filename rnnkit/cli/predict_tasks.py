"""The predictors of `rnnkit predict` for generative and forecasting runs: language models
(continue a prompt), seq2seq (decode a source line) and forecasters (the values after a
series). Each reuses its application's own code (`rnnkit.train.lm.sample`,
`rnnkit.train.seq2seq.translate`, `rnnkit.train.forecast.forecast_from_run`) and returns one
JSON-ready dict per INPUT; `rnnkit/cli/predict.py` registers them by model class."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["predict_language_model", "predict_seq2seq", "predict_forecaster"]


def _inputs(args: argparse.Namespace, what: str) -> list[str]:
    """The INPUT arguments, or else the non-blank lines of stdin."""
    from rnnkit.cli import UserError

    inputs = list(args.inputs) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not inputs:
        raise UserError(f"no {what} given (arguments or stdin)")
    return inputs


def _temperature(args: argparse.Namespace, default: float) -> float:
    from rnnkit.cli import UserError

    t = default if args.temperature is None else args.temperature
    if not 0.0 <= t < math.inf:
        raise UserError(f"--temperature must be >= 0 (0: the likeliest token), got {t}")
    return t


def predict_language_model(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    """Each INPUT is a prompt: `--length` tokens sampled after it (`--temperature` 0.8 by
    default, 0 greedy; `--top-k`, `--top-p`, `--seed`), as `rnnkit sample` does."""
    from rnnkit.cli import UserError
    from rnnkit.train.lm import sample

    if args.length < 0 or args.top_k < 0:
        raise UserError(f"--length and --top-k must be >= 0, got {args.length} and "
                        f"{args.top_k}")
    if not 0.0 < args.top_p <= 1.0:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    temperature = _temperature(args, 0.8)
    prompts = list(args.inputs) or [sys.stdin.read()]  # stdin: one prompt, newlines kept
    rows = []
    for n, prompt in enumerate(prompts):
        seed = None if args.seed is None else args.seed + n  # each prompt its own draws
        text = sample(where, prompt, args.length, temperature, args.top_k, args.top_p, seed,
                      skip_unknown=args.skip_unknown)
        rows.append({"input": prompt, "output": text})
    return rows


def predict_seq2seq(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    """Each INPUT is a source line: its decoded output, greedy by default, `--beam N` for
    beam search (`--n-best`, `--length-penalty`, `--max-len`), `--temperature` to sample,
    as `rnnkit translate` does."""
    from rnnkit.cli import UserError
    from rnnkit.cli.translate import _check_decoding_args
    from rnnkit.train.seq2seq import load_seq2seq, translate

    _check_decoding_args(args)
    if not 1 <= args.n_best <= args.beam:
        raise UserError(f"--n-best must be in [1, --beam={args.beam}], got {args.n_best}")
    temperature = _temperature(args, 0.0)
    if temperature > 0 and args.beam > 1:
        raise UserError(f"--temperature {temperature} samples, which needs --beam 1, got "
                        f"--beam {args.beam}")
    model, src_vocab, tgt_vocab, meta = load_seq2seq(where)
    sources = _inputs(args, "source lines")
    hyps = translate(model, src_vocab, sources, args.beam, args.n_best,
                     args.max_len or meta.get("max_len", 100), args.length_penalty,
                     temperature=temperature, seed=args.seed)
    rows = []
    for source, ranked in zip(sources, hyps, strict=True):
        texts = [tgt_vocab.join([tgt_vocab.tokens[t] for t in h.tokens]) for h in ranked]
        row: dict[str, Any] = {"input": source, "output": texts[0],
                               "score": round(float(ranked[0].score), 6)}
        if args.n_best > 1:
            row["n_best"] = [[t, round(float(h.score), 6)] for t, h in
                             zip(texts, ranked, strict=True)]
        rows.append(row)
    return rows


def predict_forecaster(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    """Each INPUT is a CSV file (with the run's target column, and its covariates if it has
    any) or a bundled series name: the `--steps` values after its last row (default: the
    run's horizon H), in the series' units."""
    from rnnkit.cli import UserError
    from rnnkit.data.forecast_series import load_series
    from rnnkit.train.forecast import forecast_from_run, load_run

    if args.steps < 0:
        raise UserError(f"--steps must be >= 0 (0: the run's horizon), got {args.steps}")
    model, cfg, _ = load_run(where)
    steps = args.steps or cfg.horizon
    covariates = [c.strip() for c in cfg.covariates.split(",") if c.strip()]
    column = cfg.column or load_series(cfg.data).column  # a bundled series' only column
    rows = []
    for spec in _inputs(args, "series (CSV files)"):
        try:
            series = load_series(spec, column, covariates, "")
        except FileNotFoundError as err:
            raise UserError(f"input {spec!r}: no such file; a forecasting run takes CSV files "
                            f"with the column {column!r}, or a bundled series") from err
        pred = forecast_from_run(model, cfg, series, steps)
        rows.append({"input": spec, "forecast": [round(float(v), 6) for v in pred]})
    return rows


_LOWEST_KEY = 21  # MIDI pitch of the piano roll's key 0 (A0); 88 keys up to 108 (C8)


def _parse_frames(spec: str, num_keys: int) -> Any:
    """`"60,64,67 62 -"` -> (T, K) 0/1 frames: frames split by spaces, MIDI pitches by
    commas, `-` a silent frame."""
    import torch

    from rnnkit.cli import UserError

    frames = spec.split()
    if not frames:
        raise UserError("a music run's INPUT is frames of MIDI pitches, e.g. '60,64,67 62 -'")
    roll = torch.zeros(len(frames), num_keys)
    for t, frame in enumerate(frames):
        for note in ([] if frame == "-" else frame.split(",")):
            if not note.isdigit() or not 0 <= int(note) - _LOWEST_KEY < num_keys:
                raise UserError(f"input {spec!r}: frame {t + 1} holds {note!r}; expected MIDI "
                                f"pitches {_LOWEST_KEY}..{_LOWEST_KEY + num_keys - 1} joined "
                                f"by commas, or '-' for silence")
            roll[t, int(note) - _LOWEST_KEY] = 1.0
    return roll


def _format_frames(roll: Any) -> str:
    return " ".join(",".join(str(int(k) + _LOWEST_KEY) for k in frame.nonzero()[:, 0]) or "-"
                    for frame in roll)


def predict_music(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    """Each INPUT is a prime of frames (`"60,64,67 62,65,69"`: MIDI pitches per frame, `-`
    silence): `--length` frames sampled after it (`--temperature` 1 by default, `--seed`),
    each frame fed back, in the same notation."""
    import torch

    from rnnkit.cli import UserError
    from rnnkit.train.music import load_music_model

    if args.length < 0:
        raise UserError(f"--length must be >= 0, got {args.length}")
    temperature = _temperature(args, 1.0)
    model = load_music_model(where)
    rows = []
    for n, spec in enumerate(_inputs(args, "frames")):
        gen = torch.Generator().manual_seed(args.seed + n) if args.seed is not None else None
        frames = model.generate(_parse_frames(spec, model.num_keys), args.length, temperature,
                                gen)
        rows.append({"input": spec, "output": _format_frames(frames)})
    return rows
