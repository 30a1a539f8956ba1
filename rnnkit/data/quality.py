"""Does the data fit the settings? Token level by rule (`--level auto`) and vocabulary warnings."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable

from rnnkit.data.vocab import UNK, Vocabulary, tokenize

__all__ = ["DataWarning", "choose_level", "repeated_fraction", "check_vocabulary",
           "check_unknown", "AUTO_MIN_COUNT", "AUTO_MIN_FRACTION"]

# `level="auto"`: word level when at least AUTO_MIN_FRACTION of a side's word tokens are of
# words seen AUTO_MIN_COUNT times or more in that side's training text, else characters.
AUTO_MIN_COUNT = 3
AUTO_MIN_FRACTION = 0.5
# A vocabulary is "mostly singletons" when more than half of its tokens occur once and those
# make up more than SINGLETON_TOKEN_FRACTION of the training tokens.
SINGLETON_TOKEN_FRACTION = 0.2
# The validation split is "mostly unknown" when more than this fraction of its tokens are not
# in the vocabulary.
UNKNOWN_FRACTION = 0.5


class DataWarning(UserWarning):
    """The data and the settings do not fit well (the model will likely learn little)."""


def repeated_fraction(texts: Iterable[str], min_count: int = AUTO_MIN_COUNT) -> float:
    """The fraction of word tokens in `texts` whose word occurs at least `min_count` times.

    Example:
        >>> repeated_fraction(["a b", "a c", "a b"], min_count=2)
        0.8333333333333334
    """
    counts = Counter(t for text in texts for t in tokenize(text, "word"))
    total = sum(counts.values())
    return sum(c for c in counts.values() if c >= min_count) / total if total else 0.0


def choose_level(texts: Iterable[str]) -> str:
    """"word" when most word tokens repeat (see AUTO_MIN_FRACTION), else "char".

    German number words ("dreihundertvierundzwanzig") or numbers in digits are nearly all
    distinct as words: characters. SCAN commands or ordinary sentences repeat their words.

    Example:
        >>> choose_level(["jump twice", "walk twice", "jump left", "walk left"] * 2)
        'word'
        >>> choose_level([str(n) for n in range(100, 200)])
        'char'
    """
    return "word" if repeated_fraction(texts) >= AUTO_MIN_FRACTION else "char"


def check_vocabulary(counts: Counter, what: str, hint: str = "") -> None:
    """Warn (DataWarning) when most of a vocabulary's tokens occur once in the training data
    and those singletons are a sizeable share of all training tokens."""
    types = {t: c for t, c in counts.items() if t != UNK}
    total = sum(types.values())
    singles = sum(1 for c in types.values() if c == 1)
    if total and len(types) >= 10 and singles > len(types) / 2 and \
            singles / total > SINGLETON_TOKEN_FRACTION:
        warnings.warn(f"{what}: {singles:,} of its {len(types):,} tokens occur only once in "
                      f"the training data ({100 * singles / total:.0f}% of the tokens); the "
                      f"model cannot learn them" + (f"; {hint}" if hint else ""),
                      DataWarning, stacklevel=2)


def check_unknown(vocab: Vocabulary, texts: Iterable[str], what: str, hint: str = "") -> float:
    """Warn (DataWarning) when most tokens of `texts` are unknown to `vocab`; returns the
    fraction unknown."""
    toks = [t for text in texts for t in vocab.tokenize(text)]
    if not toks:
        return 0.0
    frac = sum(t not in vocab.index for t in toks) / len(toks)
    if frac > UNKNOWN_FRACTION:
        warnings.warn(f"{what}: {100 * frac:.0f}% of its tokens are not in the vocabulary "
                      f"built from the training data (they become <unk>)"
                      + (f"; {hint}" if hint else ""), DataWarning, stacklevel=2)
    return frac
