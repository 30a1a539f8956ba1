"""The sequence-classification application: ClassifyConfig, `main(config)`, `predict`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data.labeled import (
    LabeledBatches,
    collate,
    names_by_language,
    read_labeled_tsv,
    split_examples,
)
from rnnkit.data.quality import check_unknown
from rnnkit.data.text_files import check_encoding
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.classifier import POOLINGS, SequenceClassifier
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["ClassifyConfig", "TINY", "main", "load_classifier", "predict", "evaluate"]


@dataclass
class ClassifyConfig(TrainConfig):
    """A character-level sequence classifier. Defaults: surnames -> language (from faker),
    a bidirectional 1x128 GRU, 1 minute of training."""

    data: str = option("names", "'names' (surnames by language, built in) or a TSV file of "
                     "text<TAB>label lines")
    valid: str | None = option(None, "TSV of validation pairs (default: 10% of --data)")
    out: str = option("runs/classify", "run directory")
    encoding: str = option("utf-8", "text encoding of the TSV files (e.g. latin-1)")
    cell: str = option("gru", "recurrent cell", ("lstm", "gru", "rnn"))
    embedding_size: int = option(32, "character embedding size E", low=1)
    hidden_size: int = option(128, "hidden size H", low=1)
    num_layers: int = option(1, "stacked layers L", low=1)
    bidirectional: bool = option(True, "read the text both ways")
    pooling: str = option("last", "how the sequence becomes one vector", POOLINGS)
    dropout: float = option(0.3, "dropout on embeddings, between layers and before the output",
                            below=1.0)
    batch_size: int = option(64, "sequences per batch", low=1)
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(1.0, "stop after this many minutes (0: no limit)")
    lr: float = option(3e-3, "peak learning rate")
    eval_every: int = option(100, "evaluate and checkpoint every N steps", low=1)
    warmup_steps: int = option(20, "steps of linear warm-up")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)


TINY: dict[str, Any] = dict(embedding_size=8, hidden_size=16, batch_size=16, max_steps=8,
                            time_budget=0.0, eval_every=4, warmup_steps=0, progress=False)


def _examples(cfg: ClassifyConfig) -> tuple[list, list, list]:
    pairs = names_by_language() if cfg.data == "names" else \
        read_labeled_tsv(cfg.data, cfg.encoding)
    train, valid, test = split_examples(pairs)
    if cfg.valid:
        train, valid = train + valid + test, read_labeled_tsv(cfg.valid, cfg.encoding)
        test = []
    return train, valid, test


def evaluate(model: SequenceClassifier, batches: LabeledBatches) -> dict[str, float]:
    """Mean cross-entropy and accuracy over every batch."""
    total = correct = count = 0.0
    with torch.no_grad():
        for x, lengths, y in batches:
            logits = model(x, lengths)
            total += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
            count += len(y)
    return {"loss": total / count, "accuracy": correct / count}


def main(config: ClassifyConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a classifier as `config` says; returns a summary with test accuracy."""
    with start_run(config, log) as out:
        return _train(config, out, log)


def _train(cfg: ClassifyConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    train, valid, test = _examples(cfg)
    if not train or not valid:
        raise ValueError(f"data {cfg.data!r}: {len(train)} training and {len(valid)} "
                         f"validation examples; both splits need at least one (more lines, "
                         f"or --valid FILE)")
    labels = sorted({label for _, label in train})
    vocab = Vocabulary.build("".join(text for text, _ in train), "char")
    log(f"data: {len(train):,} train / {len(valid):,} valid / {len(test):,} test examples, "
        f"{len(labels)} classes, {len(vocab)} characters")
    model = SequenceClassifier(len(labels), len(vocab), cfg.embedding_size, cfg.hidden_size,
                               cfg.num_layers, cfg.cell, cfg.bidirectional, cfg.dropout,
                               cfg.pooling)
    unseen = sorted({label for _, label in valid} - set(labels))
    if unseen:
        raise ValueError(f"validation labels {unseen[:5]} never occur in the training data "
                         f"(whose labels are {labels[:10]})")
    check_unknown(vocab, [t for t, _ in valid], "the validation texts")
    batches = LabeledBatches(train, vocab, labels, cfg.batch_size, seed=cfg.seed)
    val = LabeledBatches(valid, vocab, labels, 256, shuffle=False)

    def loss_fn(m: SequenceClassifier, batch: tuple, state: Any) -> tuple:
        x, lengths, y = batch
        return m.loss(x, y, lengths), None, len(y)

    args = dict(num_classes=len(labels), vocab_size=len(vocab),
                input_size=cfg.embedding_size, hidden_size=cfg.hidden_size,
                num_layers=cfg.num_layers, cell=cfg.cell, bidirectional=cfg.bidirectional,
                dropout=cfg.dropout, pooling=cfg.pooling)
    meta = {"model_class": "SequenceClassifier", "model_args": args, "labels": labels,
            "vocab": vocab.to_dict(), "data_fingerprint": fingerprint(train, valid, test),
            "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, batches, loss_fn, lambda m: evaluate(m, val), out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    summary = trainer.fit()
    if not distributed.is_main():  # rank 0 reports and writes the run's results
        return summary
    if test:
        best, vocab, labels = load_classifier(out)
        summary["test"] = evaluate(best, LabeledBatches(test, vocab, labels, 256,
                                                        shuffle=False))
        log(f"test (best checkpoint): accuracy {summary['test']['accuracy']:.3f}, "
            f"loss {summary['test']['loss']:.3f}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def load_classifier(path: str | Path, prefer: str = "best"
                    ) -> tuple[SequenceClassifier, Vocabulary, list[str]]:
    """The SequenceClassifier, its character vocabulary and class labels from a run."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != "SequenceClassifier":
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, not "
                         f"a SequenceClassifier")
    model = SequenceClassifier(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    return model.eval(), Vocabulary.from_dict(meta["vocab"]), list(meta["labels"])


def predict(path: str | Path, texts: Sequence[str], top: int = 3
            ) -> list[list[tuple[str, float]]]:
    """The `top` most probable labels with their probabilities, for each text."""
    model, vocab, labels = load_classifier(path)
    x, lengths, _ = collate([(vocab.encode(t), 0) for t in texts])
    with torch.no_grad():
        probs = torch.softmax(model(x, lengths), dim=-1)
    best = probs.topk(min(top, len(labels)), dim=-1)
    return [[(labels[int(i)], float(p)) for p, i in zip(ps, idx, strict=True)]
            for ps, idx in zip(best.values, best.indices, strict=True)]
