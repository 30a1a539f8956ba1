"""Parallel pairs: reading TSV / SCAN files, vocabularies with specials, and padded batches."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from rnnkit.data.text_files import DEFAULT_ENCODING, read_text_file
from rnnkit.data.vocab import UNK, Vocabulary, tokenize

__all__ = ["PAD", "BOS", "EOS", "SPECIALS", "read_pairs", "write_pairs", "build_vocab",
           "PairBatch", "PairBatches", "collate_pairs", "encode_pairs"]

SPECIALS = ("<pad>", "<s>", "</s>")
PAD, BOS, EOS = 1, 2, 3  # ids of the specials: <unk> is 0 in every Vocabulary


def read_pairs(path: str | Path, encoding: str = DEFAULT_ENCODING) -> list[tuple[str, str]]:
    """Read (source, target) pairs from `source<TAB>target` lines, or SCAN's `IN: ... OUT: ...`
    lines (gzipped files too). Blank lines are skipped.

    Raises:
        ValueError: naming the file and line that is neither form (a line with more than one
            tab included), or a binary / undecodable file (see `read_text_file`).
    """
    pairs = []
    text = read_text_file(path, encoding, "pairs file")
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("IN: ") and " OUT: " in line:
            src, tgt = line[4:].split(" OUT: ", 1)
        elif line.count("\t") == 1:
            src, tgt = line.split("\t")
        elif "\t" in line:
            raise ValueError(f"{str(path)!r} line {n}: expected 2 tab-separated columns "
                             f"(source<TAB>target), got {line.count(chr(9)) + 1}: "
                             f"{line[:60]!r}")
        else:
            raise ValueError(f"{str(path)!r} line {n}: expected 'source<TAB>target' or "
                             f"'IN: ... OUT: ...', got {line[:60]!r}")
        pairs.append((src.strip(), tgt.strip()))
    return pairs


def write_pairs(pairs: Iterable[tuple[str, str]], path: str | Path) -> Path:
    """Write pairs as `source<TAB>target` lines (tabs and newlines inside are not allowed)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as fh:
        for src, tgt in pairs:
            if "\t" in src + tgt or "\n" in src + tgt:
                raise ValueError(f"pair ({src!r}, {tgt!r}) holds a tab or newline")
            fh.write(f"{src}\t{tgt}\n")
    return p


def build_vocab(texts: Iterable[str], level: str = "word", max_size: int = 0) -> Vocabulary:
    """A Vocabulary over `texts` whose first ids are `<unk>`, `<pad>`, `<s>`, `</s>`.

    Example:
        >>> v = build_vocab(["jump twice", "walk"], level="word")
        >>> v.tokens[:4], v.encode("walk twice").tolist()
        (['<unk>', '<pad>', '<s>', '</s>'], [6, 5])
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text, level))
    ranked = sorted((t for t in counts if t != UNK and t not in SPECIALS),
                    key=lambda t: (-counts[t], t))
    if max_size > 0:
        ranked = ranked[:max_size]
    return Vocabulary([UNK, *SPECIALS, *ranked], level)


class PairBatch(NamedTuple):
    """A padded batch: src (S, B), src_len (B,), tgt_in (T, B) = BOS + target, tgt_out (T, B) =
    target + EOS, tgt_len (B,) counting the EOS; padding is PAD."""

    src: Tensor
    src_len: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_len: Tensor


def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab: Vocabulary,
                 tgt_vocab: Vocabulary) -> list[tuple[Tensor, Tensor]]:
    """Token ids of each pair; empty sources are errors (the encoder needs one step)."""
    out = []
    for i, (s, t) in enumerate(pairs):
        ids = src_vocab.encode(s)
        if ids.numel() == 0:
            raise ValueError(f"pair {i} has an empty source (target {t!r})")
        out.append((ids, tgt_vocab.encode(t)))
    return out


def collate_pairs(items: Sequence[tuple[Tensor, Tensor]]) -> PairBatch:
    """Pad encoded pairs into a PairBatch (no sorting: the model takes lengths)."""
    B = len(items)
    src_len = torch.tensor([len(s) for s, _ in items], dtype=torch.long)
    tgt_len = torch.tensor([len(t) + 1 for _, t in items], dtype=torch.long)
    src = torch.full((int(src_len.max()), B), PAD, dtype=torch.long)
    tgt_in = torch.full((int(tgt_len.max()), B), PAD, dtype=torch.long)
    tgt_out = tgt_in.clone()
    for b, (s, t) in enumerate(items):
        src[:len(s), b] = s
        tgt_in[0, b] = BOS
        tgt_in[1:len(t) + 1, b] = t
        tgt_out[:len(t), b] = t
        tgt_out[len(t), b] = EOS
    return PairBatch(src, src_len, tgt_in, tgt_out, tgt_len)


class PairBatches:
    """A BatchSource of shuffled padded batches over encoded pairs.

    Each epoch shuffles the pairs (seeded by `seed` and the epoch), sorts each window of
    `bucket` batches by source length so a batch holds similar lengths (less padding), and
    shuffles the batch order.

    Example:
        >>> items = [(torch.tensor([4] * n), torch.tensor([5])) for n in range(1, 6)]
        >>> batches = PairBatches(items, batch_size=2, seed=0)
        >>> len(batches), tuple(batches.batch(0).src.shape)[1] <= 2
        (3, True)
    """

    def __init__(self, items: Sequence[tuple[Tensor, Tensor]], batch_size: int,
                 seed: int = 0, bucket: int = 50, shuffle: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not items:
            raise ValueError("items is empty: no pairs to batch")
        self.items, self.batch_size, self.seed = list(items), batch_size, seed
        self.bucket, self.shuffle = bucket, shuffle
        self.set_epoch(0)

    def __len__(self) -> int:
        return (len(self.items) + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        order = list(range(len(self.items)))
        if not self.shuffle:
            self._batches = [order[i:i + self.batch_size]
                             for i in range(0, len(order), self.batch_size)]
            return
        rng = random.Random(self.seed * 100_003 + epoch)
        rng.shuffle(order)
        window = self.batch_size * max(self.bucket, 1)
        batches = []
        for i in range(0, len(order), window):
            chunk = sorted(order[i:i + window], key=lambda j: len(self.items[j][0]))
            batches += [chunk[k:k + self.batch_size] for k in range(0, len(chunk),
                                                                     self.batch_size)]
        rng.shuffle(batches)
        self._batches = batches

    def batch(self, index: int) -> PairBatch:
        return collate_pairs([self.items[j] for j in self._batches[index]])
