"""The polyphonic-music application: MusicConfig, `main(config)`, and evaluation in nats."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data.music import NUM_KEYS, PianoRollBatches, load_piano_rolls
from rnnkit.models.piano_roll import PianoRollModel
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.integrity import file_sha256
from rnnkit.train.lm import prepare_engine
from rnnkit.train.trainer import Trainer

__all__ = ["MusicConfig", "TINY", "main", "evaluate", "load_music_model"]


@dataclass
class MusicConfig(TrainConfig):
    """Next-frame modelling of piano rolls (JSB Chorales, Nottingham, ... as .mat files)."""

    data: str = option("", "piano-roll .mat file with traindata/validdata/testdata "
                     "(e.g. ../shared/data/polymusic/JSB_Chorales.mat)")
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


def evaluate(model: PianoRollModel, batches: PianoRollBatches) -> dict[str, float]:
    """Negative log-likelihood per frame in nats over every piece of `batches`."""
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y, lengths in batches:
            nll, n = model.nll(x, y, lengths)
            total, count = total + nll.item(), count + n
    return {"loss": total / count}


def main(config: MusicConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train as `config` says; returns a summary with the test NLL of the best checkpoint."""
    if not config.data:
        raise ValueError("data is required: a piano-roll .mat file (--data PATH)")
    with start_run(config, log) as out:
        return _train(config, out, log)


def _train(cfg: MusicConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    splits = {s: load_piano_rolls(cfg.data, s) for s in ("train", "valid", "test")}
    log(f"data: {Path(cfg.data).name}: " + ", ".join(
        f"{len(p)} {s} pieces ({sum(len(x) for x in p):,} frames)" for s, p in splits.items()))
    args = dict(num_keys=NUM_KEYS, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                cell=cfg.cell, dropout=cfg.dropout, backend=cfg.backend)
    model = PianoRollModel(**args)
    train = PianoRollBatches(splits["train"], cfg.batch_size, seed=cfg.seed)
    valid = PianoRollBatches(splits["valid"], 64, shuffle=False)

    def loss_fn(m: PianoRollModel, batch: tuple, state: Any) -> tuple:
        x, y, lengths = batch
        return m.loss(x, y, lengths), None, int(lengths.sum())

    meta = {"model_class": "PianoRollModel", "model_args": args,
            "data_fingerprint": file_sha256(Path(cfg.data))[:16],
            "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, train, loss_fn, lambda m: evaluate(m, valid), out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)  # before the budget's clock
    summary = trainer.fit()
    if not distributed.is_main():  # rank 0 reports and writes the run's results
        return summary
    best = load_music_model(out)
    summary["test_nll"] = evaluate(best, PianoRollBatches(splits["test"], 64,
                                                          shuffle=False))["loss"]
    log(f"test NLL (best checkpoint): {summary['test_nll']:.3f} nats per frame")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def load_music_model(path: str | Path, prefer: str = "best") -> PianoRollModel:
    """The PianoRollModel saved in a run or checkpoint directory, in eval mode."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != "PianoRollModel":
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, not "
                         f"a PianoRollModel")
    model = PianoRollModel(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    return model.eval()
