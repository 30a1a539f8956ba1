"""The polyphonic-music application: MusicConfig, `main(config)`, and evaluation in nats."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.music import (
    DEFAULT_DATA_DIR,
    NUM_KEYS,
    PianoRollBatches,
    load_piano_rolls,
    resolve_music_data,
)
from rnnkit.models.conditional_roll import ConditionalPianoRoll
from rnnkit.models.piano_roll import PianoRollModel
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.integrity import file_sha256
from rnnkit.train.lm import prepare_engine
from rnnkit.train.trainer import Trainer

__all__ = ["MusicConfig", "TINY", "main", "evaluate", "batch_nll", "load_music_model",
           "MUSIC_MODELS"]

MUSIC_MODELS = {"PianoRollModel": PianoRollModel, "ConditionalPianoRoll": ConditionalPianoRoll}
MusicModel = PianoRollModel | ConditionalPianoRoll


@dataclass
class MusicConfig(TrainConfig):
    """Next-frame modelling of piano rolls (JSB Chorales, Nottingham, ... as .mat files)."""

    data: str = option("", "piano-roll .mat file with traindata/validdata/testdata "
                     "(e.g. ../shared/data/polymusic/JSB_Chorales.mat), or jsb / nottingham "
                     "(files in --data-dir); several separated by commas train on all of them")
    data_dir: str = option(DEFAULT_DATA_DIR, "folder of the named data sets (jsb, nottingham)")
    conditional: bool = option(False, "condition the model on a one-hot style, the data set "
                               "each piece comes from (ConditionalPianoRoll)")
    out: str = option("runs/music", "run directory")
    cell: str = option("lstm", "recurrent cell", ("lstm", "gru", "rnn"))
    hidden_size: int = option(256, "hidden size H", low=1)
    num_layers: int = option(1, "stacked layers L", low=1)
    dropout: float = option(0.2, "dropout between layers and before the output", below=1.0)
    batch_size: int = option(16, "pieces per batch", low=1)
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(3.0, "stop after this many minutes (0: no limit)")
    lr: float = option(2e-3, "peak learning rate")
    eval_every: int = option(50, "evaluate and checkpoint every N steps", low=1)
    warmup_steps: int = option(10, "steps of linear warm-up")


TINY: dict[str, Any] = dict(hidden_size=16, batch_size=4, max_steps=6, time_budget=0.0,
                            eval_every=3, warmup_steps=0, progress=False)


def batch_nll(model: MusicModel, batch: tuple) -> tuple[Tensor, int]:
    """Summed NLL (nats) and frame count of one batch (x, y, lengths[, style ids])."""
    x, y, lengths = batch[:3]
    if isinstance(model, ConditionalPianoRoll):
        return model.nll(x, y, lengths, v=model.one_hot(batch[3]))
    return model.nll(x, y, lengths)


def _logits(model: MusicModel, batch: tuple) -> Tensor:
    x, _, lengths = batch[:3]
    if isinstance(model, ConditionalPianoRoll):
        return model(x, model.one_hot(batch[3]), lengths)
    return model(x, lengths)


def evaluate(model: MusicModel, batches: PianoRollBatches) -> dict[str, float]:
    """NLL per frame in nats over every piece of `batches` ("loss"), and the frame accuracy
    of Bay et al. (2009) with keys predicted on where p > 0.5: TP / (TP + FP + FN) summed
    over all frames ("accuracy")."""
    total, count, hits, misses = 0.0, 0, 0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in batches:
            nll, n = batch_nll(model, batch)
            total, count = total + nll.item(), count + n
            y, lengths = batch[1], batch[2]
            valid = (torch.arange(y.shape[0]).unsqueeze(1) < lengths).unsqueeze(-1)  # (T,B,1)
            guess = (_logits(model, batch) > 0) & valid
            truth = (y > 0.5) & valid
            hits += int((guess & truth).sum())
            misses += int((guess ^ truth).sum())
    model.train(was_training)
    return {"loss": total / count, "accuracy": hits / max(1, hits + misses)}


def main(config: MusicConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train as `config` says; returns a summary with the test NLL of the best checkpoint."""
    if not config.data:
        raise ValueError("data is required: a piano-roll .mat file (--data PATH)")
    with start_run(config, log) as out:
        return _train(config, out, log)


def _splits(cfg: MusicConfig, log: Callable[[str], None]) -> tuple[list[str], dict]:
    """The style names and, per split, (pieces, style index of each piece)."""
    sources = resolve_music_data(cfg.data, cfg.data_dir)
    splits: dict[str, tuple[list[Tensor], list[int]]] = {}
    for split in ("train", "valid", "test"):
        pieces, styles = [], []
        for i, (_, path) in enumerate(sources):
            part = load_piano_rolls(path, split)
            pieces, styles = pieces + part, styles + [i] * len(part)
        splits[split] = (pieces, styles)
    for i, (name, path) in enumerate(sources):
        log(f"data: {name} ({path.name}): " + ", ".join(
            f"{sum(1 for s in st if s == i)} {split} pieces "
            f"({sum(len(p) for p, s in zip(ps, st, strict=True) if s == i):,} frames)"
            for split, (ps, st) in splits.items()))
    return [n for n, _ in sources], splits


def _train(cfg: MusicConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    names, splits = _splits(cfg, log)
    args: dict[str, Any] = dict(num_keys=NUM_KEYS, hidden_size=cfg.hidden_size,
                                num_layers=cfg.num_layers, cell=cfg.cell, dropout=cfg.dropout,
                                backend=cfg.backend)
    if cfg.conditional:
        args.update(num_styles=len(names), styles=names)
    model = (ConditionalPianoRoll if cfg.conditional else PianoRollModel)(**args)
    styled = cfg.conditional

    def batches(split: str, size: int, **kw: Any) -> PianoRollBatches:
        pieces, styles = splits[split]
        return PianoRollBatches(pieces, size, styles=styles if styled else None, **kw)

    train = batches("train", cfg.batch_size, seed=cfg.seed)
    valid = batches("valid", 64, shuffle=False)

    def loss_fn(m: MusicModel, batch: tuple, state: Any) -> tuple:
        total, count = batch_nll(m, batch)
        return total / count, None, count

    sources = resolve_music_data(cfg.data, cfg.data_dir)
    fingerprint = ",".join(file_sha256(p)[:16] for _, p in sources)
    meta = {"model_class": type(model).__name__, "model_args": args,
            "data_fingerprint": fingerprint, "styles": names,
            "data_files": [str(p) for _, p in sources], "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, train, loss_fn, lambda m: evaluate(m, valid), out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)  # before the budget's clock
    summary = trainer.fit()
    if not distributed.is_main():  # rank 0 reports and writes the run's results
        return summary
    best = load_music_model(out)
    test = evaluate(best, batches("test", 64, shuffle=False))
    summary["test_nll"], summary["test_accuracy"] = test["loss"], test["accuracy"]
    log(f"test NLL (best checkpoint): {test['loss']:.3f} nats per frame, frame accuracy "
        f"{100 * test['accuracy']:.1f}%")
    for i, name in enumerate(names if len(names) > 1 else []):
        pieces = [p for p, s in zip(*splits["test"], strict=True) if s == i]
        part = evaluate(best, PianoRollBatches(pieces, 64, shuffle=False,
                                               styles=[i] * len(pieces) if styled else None))
        summary[f"test_nll_{name}"] = part["loss"]
        summary[f"test_accuracy_{name}"] = part["accuracy"]
        log(f"  {name}: test NLL {part['loss']:.3f} nats per frame, frame accuracy "
            f"{100 * part['accuracy']:.1f}%")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def load_music_model(path: str | Path, prefer: str = "best") -> MusicModel:
    """The music model (PianoRollModel or ConditionalPianoRoll) saved in a run or checkpoint
    directory, in eval mode."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    cls = MUSIC_MODELS.get(meta.get("model_class"))
    if cls is None:
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, not "
                         f"a music model ({' or '.join(MUSIC_MODELS)})")
    model = cls(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    return model.eval()
