"""The language-model application: LMConfig, its presets, `main(config)`, and sampling a run."""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data import StreamBatches, Vocabulary, load_text, split_text
from rnnkit.data.quality import check_unknown, check_vocabulary
from rnnkit.data.text_files import check_encoding
from rnnkit.decoding import generate
from rnnkit.models import LanguageModel
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["LMConfig", "PRESETS", "TINY", "main", "load_language_model", "sample",
           "UnknownTokensError", "prepare_engine"]


@dataclass
class LMConfig(TrainConfig):
    """Everything a language-model run needs. The defaults are the demo: a 1x256 char-level
    LSTM trained for 2 minutes on 3M characters of the Python standard library's source."""

    data: str | None = option(None, "text file or folder of text files (default: the Python "
                            "standard library's .py files)")
    out: str = option("runs/lm", "run directory: checkpoints, metrics.jsonl, loss.png")
    encoding: str = option("utf-8", "text encoding of the data files (e.g. latin-1)")
    level: str = option("char", "tokens are characters or words", ("char", "word"))
    max_chars: int = option(3_000_000, "read at most this many characters of data (0: all)")
    val_fraction: float = option(0.1, "the last fraction of the text is the validation split",
                                 below=1.0)
    max_vocab: int = option(0, "keep the most frequent N tokens, the rest become <unk> (0: all)")
    cell: str = option("lstm", "recurrent cell", ("lstm", "gru", "rnn"))
    embedding_size: int = option(64, "token embedding size E", low=1)
    hidden_size: int = option(256, "hidden size H", low=1)
    num_layers: int = option(1, "stacked layers L", low=1)
    dropout: float = option(0.0, "dropout on embeddings, between layers and on the output",
                            below=1.0)
    tie_weights: bool = option(False, "decoder shares the embedding matrix (needs E == H)")
    batch_size: int = option(32, "parallel streams B", low=1)
    seq_len: int = option(64, "BPTT chunk length T", low=1)
    eval_batches: int = option(8, "validation chunks per evaluation (0: the whole split)")
    sample_length: int = option(400, "tokens of text to generate at the end (0: none)")
    sample_prompt: str = option("", "prompt for the final sample (default: a newline)")
    sample_temperature: float = option(0.8, "temperature for the final sample")
    # Demo-sized training defaults (override TrainConfig's).
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(2.0, "stop after this many minutes of training (0: no limit)")
    lr: float = option(5e-3, "peak learning rate")
    eval_every: int = option(50, "evaluate and checkpoint every N steps", low=1)
    warmup_steps: int = option(20, "steps of linear warm-up from 0 to lr")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.val_fraction <= 0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_encoding(self.encoding)
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ValueError(f"tie_weights needs embedding_size == hidden_size, got "
                             f"embedding_size={self.embedding_size}, "
                             f"hidden_size={self.hidden_size}")


# Named sets of overrides (`--preset NAME`), applied before --config and flags.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    # The tiny-shakespeare benchmark run (bench/lm_shakespeare.py); pass --data.
    "shakespeare": dict(max_chars=0, embedding_size=128, hidden_size=512, num_layers=2,
                        dropout=0.25, batch_size=32, seq_len=128, optimizer="adamw", lr=3e-3,
                        weight_decay=0.01, warmup_steps=100, min_lr_ratio=0.05,
                        time_budget=30.0, eval_every=250, eval_batches=0, sample_length=600),
}

# A config that trains end to end in a second or two (tests).
TINY: dict[str, Any] = dict(embedding_size=8, hidden_size=16, num_layers=1, batch_size=4,
                            seq_len=8, max_steps=6, time_budget=0.0, eval_every=3,
                            eval_batches=2, warmup_steps=0, sample_length=20, progress=False)


def _uses_engine(model: torch.nn.Module) -> bool:
    """True when `model` holds an rnnkit layer on the CPU that may run the fused engine."""
    for m in model.modules():
        if type(m).__module__.startswith("rnnkit.layers") and \
                getattr(m, "engine", None) in ("auto", "fused"):
            p = next(m.parameters(), None)
            if p is None or p.device.type == "cpu":
                return True
    return False


def _engine_cached() -> bool:
    """Whether a build of the fused engine for this install is in the cache."""
    try:
        from rnnkit.engine._build import cache_dir

        return any(cache_dir().glob("*.so"))
    except Exception:  # a changed build module: say "building", the cautious guess
        return False


def prepare_engine(model: torch.nn.Module, log: Callable[[str], None] | None = print) -> float:
    """Build (first run on a machine) or load the fused engine that `model` will run on, with
    a progress line before and after, so that a time budget started afterwards counts training
    only. Nothing happens for a model without rnnkit layers on the CPU. Returns the seconds."""
    if not _uses_engine(model):
        return 0.0
    from rnnkit import engine

    say = log or (lambda line: None)
    if _engine_cached():
        say("engine: loading the fused engine from the cache ...")
    else:
        say("engine: building the fused engine (once per machine, about 3 min on 2 cores; "
            "`rnnkit build` does it ahead of time) ...")
    sys.stdout.flush()
    start = time.perf_counter()
    ready = engine.load_extension(quiet=True) is not None
    took = time.perf_counter() - start
    if ready:
        say(f"engine ready in {took:.1f} s")
    else:
        say(f"engine: unavailable after {took:.1f} s ({engine.build_error()}); training on "
            f"the reference path")
    return took


def _eval_fn(val: StreamBatches, limit: int) -> Callable[[torch.nn.Module], dict[str, float]]:
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        total, count, state = 0.0, 0, None
        for k, (x, y) in enumerate(val):
            if limit and k >= limit:
                break
            loss, state = model.loss(x, y, state)
            total += loss.item() * x.numel()
            count += x.numel()
        mean = total / count
        return {"loss": mean, "bpc": mean / math.log(2)}
    return evaluate


def main(config: LMConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a language model as `config` says; returns a summary (losses, run dir, sample)."""
    with start_run(config, log) as out:
        return _train(config, out, log)


def _train(cfg: LMConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    text = load_text(cfg.data, cfg.max_chars, cfg.encoding)
    train_text, val_text = split_text(text, cfg.val_fraction)
    vocab = Vocabulary.build(train_text, cfg.level, cfg.max_vocab)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    source = cfg.data or "the Python standard library"
    log(f"data: {source}: {len(train_ids):,} train / {len(val_ids):,} valid {cfg.level} tokens, "
        f"vocabulary {len(vocab)}")
    if cfg.level == "word":
        check_vocabulary(Counter(vocab.tokenize(train_text)), "the word vocabulary",
                         "use --level char, or more data")
    check_unknown(vocab, [val_text], "the validation text",
                  "the two splits differ; more data or --level char may help")

    model = LanguageModel(len(vocab), cfg.embedding_size, cfg.hidden_size, cfg.num_layers,
                          cfg.cell, cfg.dropout, cfg.tie_weights, cfg.backend)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {cfg.num_layers}x{cfg.hidden_size} {cfg.cell.upper()} "
        f"({type(model.rnn).__module__}.{type(model.rnn).__name__}), {n_params:,} parameters")
    batches = StreamBatches(train_ids, cfg.batch_size, cfg.seq_len)
    val_bs = max(1, min(cfg.batch_size, (len(val_ids) - 1) // (cfg.seq_len + 1)))
    val = StreamBatches(val_ids, val_bs, cfg.seq_len)

    def loss_fn(m: LanguageModel, batch: tuple, state: Any) -> tuple:
        x, y = batch
        loss, state = m.loss(x, y, state, teacher_forcing=cfg.teacher_forcing)
        return loss, state, x.numel()

    meta = {"model_class": "LanguageModel", "model_args": model.config(),
            "vocab": vocab.to_dict(), "data_fingerprint": fingerprint(train_text, val_text),
            "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, batches, loss_fn, _eval_fn(val, cfg.eval_batches), out, meta,
                      derived=lambda loss: {"bpc": loss / math.log(2)},
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)  # before the budget's clock
    summary = trainer.fit()
    if not distributed.is_main():  # rank 0 reports and writes the run's results
        return summary
    summary.update(run_dir=str(out), vocab_size=len(vocab), parameters=n_params)
    summary["last_val_loss"] = _last_valid_loss(out / "metrics.jsonl")
    log(f"done: {summary['stop_reason']} after {summary['step']} steps, "
        f"{summary['elapsed_s']:.0f}s; best valid loss {summary['best_val_loss']:.4f} nats "
        f"({summary['best_val_loss'] / math.log(2):.4f} bpc); run in {out}")
    if cfg.sample_length:
        log(f"--- sample ({cfg.sample_length} tokens, temperature {cfg.sample_temperature}) ---")
        summary["sample"] = sample(out, cfg.sample_prompt, cfg.sample_length,
                                   cfg.sample_temperature, seed=cfg.seed, stream=sys.stdout)
    return summary


def _last_valid_loss(path: Path) -> float | None:
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    vals = [r["loss"] for r in rows if r["split"] == "valid"]
    return vals[-1] if vals else None


def load_language_model(path: str | Path, prefer: str = "best",
                        backend: str | None = None) -> tuple[LanguageModel, Vocabulary, dict]:
    """Rebuild the LanguageModel and Vocabulary saved in a run or checkpoint directory."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != "LanguageModel":
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, "
                         f"not a LanguageModel")
    args = dict(meta["model_args"])
    if backend is not None:
        args["backend"] = backend
    model = LanguageModel(**args)
    ckpt.load_model_weights(where, model)
    model.eval()
    return model, Vocabulary.from_dict(meta["vocab"]), meta


class UnknownTokensError(ValueError):
    """The prompt holds tokens the model's vocabulary lacks."""


def sample(path: str | Path, prompt: str = "", length: int = 200, temperature: float = 0.8,
           top_k: int = 0, top_p: float = 1.0, seed: int | None = None, stream: Any = None,
           skip_unknown: bool = False, prefer: str = "best") -> str:
    """Generate `length` tokens from the model in `path` after `prompt`; returns the new text.

    Args:
        stream: a text stream (e.g. sys.stdout) that receives the prompt and then each token
            as it is generated.
        skip_unknown: drop prompt tokens the vocabulary lacks instead of raising
            UnknownTokensError.
    """
    model, vocab, _ = load_language_model(path, prefer)
    missing = vocab.unknown(prompt)
    if missing:
        if not skip_unknown:
            shown = ", ".join(repr(t) for t in missing[:10])
            raise UnknownTokensError(
                f"prompt has {len(missing)} {vocab.level}(s) the model never saw in training: "
                f"{shown}; remove them or pass skip_unknown (--skip-unknown)")
        prompt = vocab.join([t for t in vocab.tokenize(prompt) if t in vocab.index])
    start = prompt or ("\n" if "\n" in vocab.index else vocab.tokens[1])
    ids = vocab.encode(start)
    if stream is not None and prompt:
        stream.write(prompt)
        stream.flush()
    pieces: list[str] = []

    def emit(tok: int) -> None:
        piece = vocab.tokens[tok]
        if vocab.level == "word" and piece != "\n" and (pieces or prompt) and \
                (pieces[-1] if pieces else prompt[-1:]) != "\n":
            piece = " " + piece
        pieces.append(piece)
        if stream is not None:
            stream.write(piece)
            stream.flush()

    generate(model, ids, length, temperature, top_k, top_p, seed, on_token=emit,
             suppress=[0])  # never emit <unk>
    if stream is not None:
        stream.write("\n")
        stream.flush()
    return "".join(pieces)
