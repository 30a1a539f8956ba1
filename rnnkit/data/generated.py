"""Generated translation tasks from real linguistic data: spelled-out numbers and dates."""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence

__all__ = ["number_pairs", "date_pairs", "split_numbers", "split_days", "DATE_FORMATS",
           "DEFAULT_LOCALES"]

DATE_FORMATS = ("medium", "long", "full")  # babel's "short" uses two-digit years: ambiguous
DEFAULT_LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES", "ru_RU")
_EXTRA = 'pip install "rnnkit[all]"'


def _num2words():
    try:
        from num2words import num2words
    except ImportError as err:
        raise ImportError(f"the numbers task needs num2words: {_EXTRA}") from err
    return num2words


def _format_date():
    try:
        from babel.dates import format_date
    except ImportError as err:
        raise ImportError(f"the dates task needs babel: {_EXTRA}") from err
    return format_date


def split_numbers(count: int, high: int, seed: int = 0,
                  fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> list[list[int]]:
    """Draw `count` distinct numbers from [0, high] and cut them into disjoint parts (train,
    valid, test by default), so held-out numbers never appear in training.

    Example:
        >>> parts = split_numbers(10, 99, seed=1)
        >>> [len(p) for p in parts], len(set(parts[0]) & set(parts[2]))
        ([8, 1, 1], 0)
    """
    if count > high + 1:
        raise ValueError(f"count={count} distinct numbers do not fit in [0, {high}]")
    drawn = random.Random(seed).sample(range(high + 1), count)
    out, start = [], 0
    for i, f in enumerate(fractions):
        end = count if i == len(fractions) - 1 else start + round(f * count)
        out.append(drawn[start:end])
        start = end
    return out


def number_pairs(numbers: Sequence[int], lang: str = "fr",
                 reverse: bool = False) -> list[tuple[str, str]]:
    """(words, digits) pairs such as ('deux cent un', '201'); `reverse` gives (digits, words).

    Args:
        lang: a num2words language code ("fr", "en", "de", ...).
    """
    to_words = _num2words()
    pairs = [(to_words(n, lang=lang), str(n)) for n in numbers]
    return [(d, w) for w, d in pairs] if reverse else pairs


def split_days(count: int, seed: int = 0, start: datetime.date = datetime.date(1900, 1, 1),
               end: datetime.date = datetime.date(2099, 12, 31),
               fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> list[list[datetime.date]]:
    """`count` distinct days in [start, end] cut into disjoint parts, like `split_numbers`."""
    parts = split_numbers(count, (end - start).days, seed, fractions)
    return [[start + datetime.timedelta(days=d) for d in part] for part in parts]


def date_pairs(days: Sequence[datetime.date], locales: Sequence[str] = DEFAULT_LOCALES,
               seed: int = 0, formats: Sequence[str] = DATE_FORMATS) -> list[tuple[str, str]]:
    """(written date, ISO 8601) pairs: each day written by babel in a random locale and format,
    e.g. ('5. März 2024', '2024-03-05'). Same seed, same pairs."""
    fmt = _format_date()
    rng = random.Random(seed)
    pairs = []
    for day in days:
        text = fmt(day, rng.choice(list(formats)), locale=rng.choice(list(locales)))
        pairs.append((" ".join(text.split()), day.isoformat()))  # babel uses narrow spaces
    return pairs
