"""Vocabulary: char-level and word-level tokenisation, id encoding, and its JSON form."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["Vocabulary", "UNK"]

UNK = "<unk>"
# Word-level tokens: a run of word characters, a single newline, or any other single symbol.
# Spaces are dropped when tokenising and put back between tokens when decoding.
_WORD_RE = re.compile(r"\w+|\n|[^\w\s]")


class Vocabulary:
    """Maps tokens (characters or words) to ids and back.

    Id 0 is always `<unk>`, which stands for any token not seen when the vocabulary was built.

    Args:
        tokens: the tokens in id order, `<unk>` first.
        level: "char" or "word".

    Example:
        >>> v = Vocabulary.build("abba", level="char")
        >>> v.encode("abc").tolist()
        [1, 2, 0]
        >>> v.decode([2, 1])
        'ba'
    """

    def __init__(self, tokens: list[str], level: str = "char") -> None:
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {level!r}")
        if not tokens or tokens[0] != UNK:
            raise ValueError(f"the first token must be {UNK!r}, got {tokens[:1]!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens contain duplicates")
        self.level = level
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self._table: np.ndarray | None = None  # code point -> id, built on first encode

    @classmethod
    def build(cls, text: str, level: str = "char", max_size: int = 0,
              min_count: int = 1) -> Vocabulary:
        """Build a vocabulary from `text`, most frequent tokens first (ties broken by token).

        Args:
            max_size: keep at most this many tokens besides `<unk>` (0: no limit).
            min_count: drop tokens seen fewer times than this.
        """
        counts = Counter(text) if level == "char" else Counter(tokenize(text, level))
        ranked = sorted((t for t, c in counts.items() if c >= min_count and t != UNK),
                        key=lambda t: (-counts[t], t))
        if max_size > 0:
            ranked = ranked[:max_size]
        if level == "char":
            ranked.sort()  # char vocabularies read best in code-point order
        return cls([UNK, *ranked], level)

    def __len__(self) -> int:
        return len(self.tokens)

    def tokenize(self, text: str) -> list[str]:
        """Split `text` into this vocabulary's tokens."""
        return tokenize(text, self.level)

    def unknown(self, text: str) -> list[str]:
        """The distinct tokens of `text` that are not in the vocabulary, in order of appearance."""
        seen: dict[str, None] = {}
        for t in self.tokenize(text):
            if t not in self.index:
                seen[t] = None
        return list(seen)

    def encode(self, text: str) -> torch.Tensor:
        """Ids of the tokens of `text`, unknown tokens mapped to `<unk>` (id 0); shape (T,)."""
        if self.level == "char":
            # A lookup table over code points (built once) encodes megabytes of text in well
            # under a second, and many short texts without rebuilding it for each.
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            if codes.size == 0:
                return torch.zeros(0, dtype=torch.long)
            table = self._char_table()
            ids = table[np.minimum(codes, table.size - 1)]
            ids[codes >= table.size] = 0  # beyond every known character: <unk>
            return torch.from_numpy(ids)
        return torch.tensor([self.index.get(t, 0) for t in self.tokenize(text)], dtype=torch.long)

    def _char_table(self) -> np.ndarray:
        if self._table is None:
            chars = [t for t in self.index if len(t) == 1]
            self._table = np.zeros(max((ord(t) for t in chars), default=0) + 1, dtype=np.int64)
            for t in chars:
                self._table[ord(t)] = self.index[t]
        return self._table

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Text for a sequence of ids (words joined by spaces, except around newlines)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        toks = [self.tokens[i] for i in ids]
        if self.level == "char":
            return "".join(toks)
        return self.join(toks)

    def join(self, toks: list[str]) -> str:
        """Glue tokens into text the way `decode` does."""
        if self.level == "char":
            return "".join(toks)
        out: list[str] = []
        for t in toks:
            if out and t != "\n" and out[-1] != "\n":
                out.append(" ")
            out.append(t)
        return "".join(out)

    def to_dict(self) -> dict:
        """JSON-ready form, stored in a checkpoint's config.json."""
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(list(d["tokens"]), d["level"])


def tokenize(text: str, level: str) -> list[str]:
    """Split text into characters (`level="char"`) or words and symbols (`level="word"`)."""
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD_RE.findall(text)
    raise ValueError(f"level must be 'char' or 'word', got {level!r}")
