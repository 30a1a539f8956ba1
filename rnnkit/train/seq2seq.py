"""The translation application: Seq2SeqConfig, `main(config)`, loading a run, translate, eval."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data.pairs import (
    BOS,
    EOS,
    PAD,
    PairBatches,
    build_vocab,
    collate_pairs,
    encode_pairs,
    read_pairs,
)
from rnnkit.data.quality import check_unknown, check_vocabulary, choose_level
from rnnkit.data.text_files import check_encoding
from rnnkit.data.vocab import Vocabulary
from rnnkit.decoding.beam import beam_search
from rnnkit.decoding.greedy import Hypothesis, greedy_decode
from rnnkit.models.seq2seq import ATTENTION_CHOICES, Seq2Seq
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.lm import prepare_engine
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["Seq2SeqConfig", "PRESETS", "TINY", "SAMPLING_SCHEDULES", "teacher_forcing_ratio",
           "main", "load_seq2seq", "translate", "score_outputs", "evaluate_pairs"]

SAMPLING_SCHEDULES = ("none", "linear", "exponential", "inverse_sigmoid")


@dataclass
class Seq2SeqConfig(TrainConfig):
    """Everything a sequence-to-sequence run needs; `train` (a pairs file) is required."""

    train: str | None = option(None, "training pairs: source<TAB>target lines or SCAN's "
                             "'IN: ... OUT: ...' lines (.gz too)")
    valid: str | None = option(None, "validation pairs (default: the last valid_fraction of "
                             "--train, held out)")
    valid_fraction: float = option(0.05, "held-out fraction of --train when --valid is not given",
                                   below=1.0)
    out: str = option("runs/seq2seq", "run directory: checkpoints, metrics.jsonl, loss.png")
    encoding: str = option("utf-8", "text encoding of the pairs files (e.g. latin-1)")
    level: str = option("auto", "tokens of both sides; auto: per side, words when most word "
                      "tokens of its training text occur 3+ times, else characters",
                      ("auto", "char", "word"))
    src_level: str = option("", "source tokens, overriding level", ("", "auto", "char", "word"))
    tgt_level: str = option("", "target tokens, overriding level", ("", "auto", "char", "word"))
    share_vocab: bool = option(False, "one vocabulary and embedding for both sides")
    tie_weights: bool = option(False, "output layer shares the target embedding (needs E == H)")
    cell: str = option("lstm", "recurrent cell", ("lstm", "gru", "rnn"))
    embedding_size: int = option(64, "token embedding size E", low=1)
    hidden_size: int = option(128, "hidden size H", low=1)
    num_layers: int = option(1, "stacked layers L (encoder and decoder)", low=1)
    bidirectional: bool = option(False, "bidirectional encoder")
    attention: str = option("general", "attention over the encoder outputs ('none': the decoder "
                          "starts from the encoded state only)", ATTENTION_CHOICES)
    input_feeding: bool = option(False, "feed the attentional vector into the next step")
    dropout: float = option(0.0, "dropout on embeddings, between layers and before the output",
                            below=1.0)
    batch_size: int = option(64, "pairs per batch B", low=1)
    sampling_schedule: str = option("none", "scheduled sampling: decay the teacher-forcing "
                                  "ratio over steps (none: constant --teacher-forcing)",
                                  SAMPLING_SCHEDULES)
    sampling_k: float = option(0.0, "schedule constant: linear slope per step, exponential base "
                             "(< 1), inverse-sigmoid k (>= 1); 0 picks one that decays over "
                             "the run")
    sampling_min: float = option(0.0, "the teacher-forcing ratio never falls below this",
                                 high=1.0)
    max_len: int = option(0, "longest output when decoding (0: 2 x longest train target + 10)")
    eval_examples: int = option(500, "validation pairs decoded greedily for exact match at each "
                              "evaluation (0: none)")
    # Training defaults for this application (override TrainConfig's).
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    max_epochs: int = option(10, "stop after this many passes over the data (0: no limit)")
    eval_every: int = option(500, "evaluate and checkpoint every N steps", low=1)
    carry_state: bool = option(False, "unused by seq2seq: each pair starts from a zero state")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)
        if self.sampling_schedule == "exponential" and self.sampling_k >= 1.0:
            raise ValueError(f"sampling_k must be < 1 for the exponential schedule, got "
                             f"{self.sampling_k}")
        if self.sampling_schedule == "inverse_sigmoid" and 0.0 < self.sampling_k < 1.0:
            raise ValueError(f"sampling_k must be >= 1 (or 0: automatic) for the "
                             f"inverse_sigmoid schedule, got {self.sampling_k}")
        if self.input_feeding and self.attention == "none":
            raise ValueError("input_feeding needs attention, got attention='none'")
        if self.carry_state:
            raise ValueError("carry_state must be false for seq2seq: pairs are independent")


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # SCAN (bench/seq2seq_scan.py, docs/results/seq2seq.md): a small GRU, bidirectional
    # encoder, Luong general attention; 99.7% on the simple split in 15 epochs.
    "scan": dict(cell="gru", embedding_size=64, hidden_size=128, bidirectional=True,
                 attention="general", batch_size=64, lr=2e-3, max_epochs=15, eval_every=1000,
                 progress=False),
    # SCAN length split: small, heavily regularised, Bahdanau attention (the kind of model
    # Lake & Baroni 2018 found best on this split); see docs/results/seq2seq.md.
    "scan_length": dict(cell="gru", embedding_size=50, hidden_size=50, bidirectional=False,
                        attention="bahdanau", dropout=0.5, batch_size=64, lr=2e-3,
                        max_epochs=15, eval_every=1000, progress=False),
}

TINY: dict[str, Any] = dict(embedding_size=8, hidden_size=16, batch_size=4, max_epochs=0,
                            max_steps=6, eval_every=3, eval_examples=4, progress=False)


def teacher_forcing_ratio(cfg: Seq2SeqConfig, step: int, total_steps: int) -> float:
    """The teacher-forcing probability at `step` (Bengio et al. 2015's decays of epsilon_i).

    linear: `max(min, 1 - k * step)`; exponential: `max(min, k ** step)`; inverse_sigmoid:
    `max(min, k / (k + exp(step / k)))`. With k = 0 a k is chosen so that the ratio reaches
    about `min` (or 0.1) near `total_steps`.

    Example:
        >>> cfg = Seq2SeqConfig(train="x", sampling_schedule="linear", sampling_k=0.01)
        >>> teacher_forcing_ratio(cfg, 50, 1000), teacher_forcing_ratio(cfg, 500, 1000)
        (0.5, 0.0)
    """
    kind, k, low = cfg.sampling_schedule, cfg.sampling_k, cfg.sampling_min
    if kind == "none":
        return cfg.teacher_forcing
    n = max(total_steps, 1)
    if kind == "linear":
        eps = 1.0 - (k or 1.0 / n) * step
    elif kind == "exponential":
        eps = (k or 0.1 ** (1.0 / n)) ** step
    else:
        k = k or max(1.0, n / 10.0)
        eps = k / (k + math.exp(min(step / k, 700.0)))
    return max(low, eps)


def _levels(cfg: Seq2SeqConfig, pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """Each side's token level; "auto" is decided from that side's training texts."""
    levels = [cfg.src_level or cfg.level, cfg.tgt_level or cfg.level]
    for side in (0, 1):
        if levels[side] == "auto":
            levels[side] = choose_level(p[side] for p in pairs)
    return levels[0], levels[1]


def _eval_fn(valid: list, cfg: Seq2SeqConfig, max_len: int) -> Callable:
    """Validation loss (teacher forced) and greedy exact match on the first eval_examples."""
    batches = PairBatches(valid, max(cfg.batch_size, 64), shuffle=False)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        total, count = 0.0, 0
        for i in range(len(batches)):
            b = batches.batch(i)
            n = int((b.tgt_out != PAD).sum())
            total += m.loss(b.src, b.src_len, b.tgt_in, b.tgt_out).item() * n
            count += n
        result = {"loss": total / count}
        if cfg.eval_examples:
            items = valid[:cfg.eval_examples]
            hyps = _decode_items(m, items, 1, 1, max_len, 1.0, max(cfg.batch_size, 64))
            refs = [t.tolist() for _, t in items]
            result["exact_match"] = sum(h[0].tokens == r for h, r in zip(hyps, refs,
                                                                        strict=True)) / len(refs)
        return result
    return evaluate


def main(config: Seq2SeqConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a Seq2Seq model as `config` says; returns a summary (losses, run dir, accuracy)."""
    if not config.train:
        raise ValueError("train is required: a pairs file (--train PAIRS)")
    with start_run(config, log) as out:
        return _train(config, out, log)


def _split(cfg: Seq2SeqConfig) -> tuple[list, list]:
    train_pairs = read_pairs(cfg.train, cfg.encoding)
    if not train_pairs:
        raise ValueError(f"train file {cfg.train!r} holds no pairs")
    if cfg.valid:
        valid_pairs = read_pairs(cfg.valid, cfg.encoding)
        if not valid_pairs:
            raise ValueError(f"valid file {cfg.valid!r} holds no pairs")
        return train_pairs, valid_pairs
    n_valid = max(1, int(len(train_pairs) * cfg.valid_fraction))
    if n_valid >= len(train_pairs):
        raise ValueError(f"train has {len(train_pairs)} pairs: too few to hold out "
                         f"valid_fraction={cfg.valid_fraction}; pass --valid")
    order = list(range(len(train_pairs)))
    random.Random(cfg.seed).shuffle(order)
    return [train_pairs[i] for i in order[n_valid:]], [train_pairs[i] for i in order[:n_valid]]


def _vocabularies(cfg: Seq2SeqConfig, train_pairs: list, valid_pairs: list
                  ) -> tuple[Vocabulary, Vocabulary, str, str]:
    src_level, tgt_level = _levels(cfg, train_pairs)
    if cfg.share_vocab:
        if src_level != tgt_level:
            raise ValueError(f"share_vocab needs one token level, got src_level={src_level!r}, "
                             f"tgt_level={tgt_level!r}")
        src_vocab = tgt_vocab = build_vocab([s for p in train_pairs for s in p], src_level)
    else:
        src_vocab = build_vocab([s for s, _ in train_pairs], src_level)
        tgt_vocab = build_vocab([t for _, t in train_pairs], tgt_level)
    for side, vocab, level in ((0, src_vocab, src_level), (1, tgt_vocab, tgt_level)):
        name = ("source", "target")[side]
        hint = (f"--{('src', 'tgt')[side]}-level char (or --level auto) may fit this data"
                if level == "word" else "")
        if level == "word":
            check_vocabulary(Counter(t for p in train_pairs for t in vocab.tokenize(p[side])),
                             f"the {name} vocabulary ({level} level)", hint)
        check_unknown(vocab, [p[side] for p in valid_pairs],
                      f"the validation {name}s ({level} level)", hint)
    return src_vocab, tgt_vocab, src_level, tgt_level


def _train(cfg: Seq2SeqConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    train_pairs, valid_pairs = _split(cfg)
    src_vocab, tgt_vocab, src_level, tgt_level = _vocabularies(cfg, train_pairs, valid_pairs)
    train_items = encode_pairs(train_pairs, src_vocab, tgt_vocab)
    valid_items = encode_pairs(valid_pairs, src_vocab, tgt_vocab)
    longest = max(len(t) for _, t in train_items)
    max_len = cfg.max_len or 2 * longest + 10
    log(f"data: {cfg.train}: {len(train_items):,} train / {len(valid_items):,} valid pairs; "
        f"vocabularies {len(src_vocab)} ({src_level}) -> {len(tgt_vocab)} ({tgt_level})")

    model = Seq2Seq(len(src_vocab), len(tgt_vocab), cfg.embedding_size, cfg.hidden_size,
                    cfg.num_layers, cfg.cell, cfg.bidirectional, cfg.attention,
                    cfg.input_feeding, cfg.dropout, cfg.share_vocab, cfg.tie_weights,
                    cfg.backend, PAD, BOS, EOS)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {cfg.num_layers}x{cfg.hidden_size} {cfg.cell.upper()} "
        f"{'bi' if cfg.bidirectional else 'uni'}directional encoder, attention "
        f"{cfg.attention}, {n_params:,} parameters")
    batches = PairBatches(train_items, cfg.batch_size, seed=cfg.seed)
    total_steps = cfg.max_steps or cfg.max_epochs * len(batches)
    gen = torch.Generator().manual_seed(cfg.seed)
    trainer: Trainer | None = None

    def loss_fn(m: Seq2Seq, b: Any, state: Any) -> tuple:
        ratio = teacher_forcing_ratio(cfg, trainer.step if trainer else 0, total_steps)
        loss = m.loss(b.src, b.src_len, b.tgt_in, b.tgt_out, ratio, gen)
        return loss, None, int(b.tgt_len.sum())

    meta = {"model_class": "Seq2Seq", "model_args": model.config(),
            "src_vocab": src_vocab.to_dict(), "tgt_vocab": tgt_vocab.to_dict(),
            "data_fingerprint": fingerprint(train_pairs, valid_pairs),
            "max_len": max_len, "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, batches, loss_fn,
                      _eval_fn(valid_items, cfg, max_len),
                      out, meta, log=log if not cfg.progress else None)
    trainer.generators["sampling"] = gen
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)  # before the budget's clock
    summary = trainer.fit()
    if not distributed.is_main():  # rank 0 reports and writes the run's results
        return summary
    summary.update(run_dir=str(out), parameters=n_params)
    log(f"done: {summary['stop_reason']} after {summary['step']} steps, "
        f"{summary['elapsed_s']:.0f}s; best valid loss {summary['best_val_loss']:.4f}; "
        f"run in {out}")
    return summary


def load_seq2seq(path: str | Path, prefer: str = "best"
                 ) -> tuple[Seq2Seq, Vocabulary, Vocabulary, dict]:
    """Rebuild the Seq2Seq model and its two vocabularies saved in a run or checkpoint."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != "Seq2Seq":
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, "
                         f"not a Seq2Seq")
    model = Seq2Seq(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    model.eval()
    return (model, Vocabulary.from_dict(meta["src_vocab"]),
            Vocabulary.from_dict(meta["tgt_vocab"]), meta)


@torch.no_grad()
def _decode_items(model: Seq2Seq, items: Sequence[tuple[torch.Tensor, Any]], beam: int,
                  n_best: int, max_len: int, length_penalty: float, batch_size: int,
                  with_attention: bool = False, temperature: float = 0.0,
                  seed: int | None = None) -> list[list[Hypothesis]]:
    was_training = model.training
    model.eval()
    out: list[list[Hypothesis]] = []
    suppress = [0, PAD, BOS]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    try:
        for i in range(0, len(items), batch_size):
            chunk = [(s, torch.zeros(0, dtype=torch.long)) for s, _ in items[i:i + batch_size]]
            b = collate_pairs(chunk)
            state = model.init_decoder(b.src, b.src_len)
            start = torch.full((len(chunk),), BOS, dtype=torch.long)
            if beam == 1:
                hyps = greedy_decode(model, state, start, EOS, max_len, temperature,
                                     generator=gen, suppress=suppress,
                                     length_penalty=length_penalty,
                                     with_attention=with_attention)
                out += [[h] for h in hyps]
            else:
                out += beam_search(model, state, start, EOS, max_len, beam, n_best,
                                   length_penalty, suppress, with_attention)
    finally:
        model.train(was_training)
    return out


def translate(model: Seq2Seq, src_vocab: Vocabulary, sources: Sequence[str], beam: int = 1,
              n_best: int = 1, max_len: int = 100, length_penalty: float = 1.0,
              batch_size: int = 64, with_attention: bool = False, temperature: float = 0.0,
              seed: int | None = None) -> list[list[Hypothesis]]:
    """Decode each source text (greedy for `beam == 1`, or sampled with `temperature > 0`;
    beam search otherwise); returns the `n_best` hypotheses of each, best first.
    `tgt_vocab.decode(h.tokens)` gives the text."""
    if beam > 1 and temperature > 0:
        raise ValueError(f"temperature={temperature} samples, which needs beam=1, got "
                         f"beam={beam}")
    items = encode_pairs([(s, "") for s in sources], src_vocab, src_vocab)
    return _decode_items(model, items, beam, n_best, max_len, length_penalty, batch_size,
                         with_attention, temperature, seed)


def score_outputs(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                  bleu: bool = True) -> dict[str, float]:
    """Exact match, token accuracy (position by position, over reference tokens) and corpus
    BLEU (sacrebleu, on the space-joined tokens) of token sequences.

    Example:
        >>> s = score_outputs([["a", "b"], ["c"]], [["a", "b"], ["c", "d"]], bleu=False)
        >>> s["exact_match"], s["token_accuracy"]
        (0.5, 0.75)
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    exact = sum(list(h) == list(r) for h, r in zip(hypotheses, references, strict=True))
    right = sum(sum(a == b for a, b in zip(h, r, strict=False))
                for h, r in zip(hypotheses, references, strict=True))
    total = sum(len(r) for r in references)
    result = {"exact_match": exact / max(len(references), 1),
              "token_accuracy": right / max(total, 1)}
    if not bleu:
        return result
    try:
        import sacrebleu
    except ImportError as err:
        raise ImportError('BLEU needs sacrebleu: pip install "rnnkit[all]"') from err
    corpus = sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses],
                                 [[" ".join(r) for r in references]], tokenize="none")
    result["bleu"] = float(corpus.score)
    return result


def evaluate_pairs(model: Seq2Seq, src_vocab: Vocabulary, tgt_vocab: Vocabulary,
                   pairs: Sequence[tuple[str, str]], beam: int = 1, max_len: int = 100,
                   length_penalty: float = 1.0, batch_size: int = 64
                   ) -> tuple[dict[str, float], list[str]]:
    """Scores of the model's outputs on `pairs` (see `score_outputs`) and the output texts."""
    hyps = translate(model, src_vocab, [s for s, _ in pairs], beam, 1, max_len,
                     length_penalty, batch_size)
    hyp_toks = [[tgt_vocab.tokens[i] for i in h[0].tokens] for h in hyps]
    ref_toks = [tgt_vocab.tokenize(t) for _, t in pairs]
    return score_outputs(hyp_toks, ref_toks), [tgt_vocab.join(t) for t in hyp_toks]
