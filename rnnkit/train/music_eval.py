"""Music runs in `rnnkit eval` (test NLL per frame of jsb | nottingham | FILE.mat) and in
`rnnkit predict` (the likeliest notes of the frame after a MIDI file)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rnnkit.data.music import (
    DEFAULT_DATA_DIR,
    PianoRollBatches,
    load_piano_rolls,
    resolve_music_data,
)
from rnnkit.models.conditional_roll import ConditionalPianoRoll
from rnnkit.train.music import evaluate, load_music_model

__all__ = ["score", "predict_next"]


def score(args: argparse.Namespace, where: Path, meta: dict[str, Any]
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """NLL per frame (nats) and frame accuracy of the test split of `args.test`; for a
    conditional run, under the style of that data set (when it is one the run trained on)
    and under every style (`nll_<style>`)."""
    cfg = meta.get("run_config", {})
    sources = resolve_music_data(args.test, cfg.get("data_dir", DEFAULT_DATA_DIR))
    if len(sources) != 1:
        raise ValueError(f"--test names {len(sources)} data sets; score one at a time")
    name, path = sources[0]
    pieces = load_piano_rolls(path, "test")
    model = load_music_model(where)
    size = args.batch_size
    print(f"test pieces: {len(pieces)} ({sum(len(p) - 1 for p in pieces):,} predicted frames) "
          f"from {path}")
    if not isinstance(model, ConditionalPianoRoll):
        scores = evaluate(model, PianoRollBatches(pieces, size, shuffle=False))
    else:
        scores = {}
        for i, style in enumerate(model.styles or range(model.num_styles)):
            s = evaluate(model, PianoRollBatches(pieces, size, shuffle=False,
                                                 styles=[i] * len(pieces)))
            scores[f"nll_{style}"], scores[f"accuracy_{style}"] = s["loss"], s["accuracy"]
            print(f"under style {style}: NLL {s['loss']:.4f} nats per frame, frame accuracy "
                  f"{100 * s['accuracy']:.2f}%")
        if name in (model.styles or []):
            scores = {"loss": scores[f"nll_{name}"], "accuracy": scores[f"accuracy_{name}"],
                      **scores}
        else:
            print(f"{name!r} is none of the run's styles {model.styles}: no single NLL")
    if "loss" in scores:
        print(f"NLL: {scores['loss']:.4f} nats per frame")
        print(f"frame accuracy: {100 * scores['accuracy']:.2f}%")
    return scores, {"data": name}


def predict_next(where: Path, inputs: list[str], top: int) -> list[dict[str, Any]]:
    """For each MIDI file of `inputs`: the `top` likeliest notes of the frame that follows
    it (one frame per quarter note), with their probabilities; a conditional run gives one
    row per style."""
    import torch

    from rnnkit.data.midi import PIANO_OFFSET, read_midi
    from rnnkit.train.music_generate import note_name

    if not inputs:
        raise ValueError("no inputs given: MIDI files (.mid) to continue")
    if top < 1:
        raise ValueError(f"--top must be >= 1, got {top}")
    model = load_music_model(where)
    rows: list[dict[str, Any]] = []
    for spec in inputs:
        roll = read_midi(spec)  # (T, 88)
        if len(roll) == 0:
            raise ValueError(f"{spec!r} holds no frames")
        styles = (model.styles or list(range(model.num_styles))) \
            if isinstance(model, ConditionalPianoRoll) else [None]
        for style in styles:
            with torch.no_grad():
                x = roll.unsqueeze(1)  # (T, 1, 88)
                logits = model(x) if style is None else model(x, model.one_hot(style))
            p = torch.sigmoid(logits[-1, 0])  # (88,)
            best = p.topk(min(top, len(p)))
            row: dict[str, Any] = {"input": spec} if style is None else \
                {"input": spec, "style": style}
            row["notes"] = [[note_name(int(k) + PIANO_OFFSET), round(float(q), 6)]
                            for q, k in zip(best.values, best.indices, strict=True)]
            rows.append(row)
    return rows
