"""`rnnkit eval RUN --test jsb|nottingham|FILE.mat` for music runs: test NLL per frame."""

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

__all__ = ["score"]


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
