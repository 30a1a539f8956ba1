"""Labelled texts for classification: TSV files, built-in names by language, padded batches."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.text_files import DEFAULT_ENCODING, read_tsv
from rnnkit.data.vocab import Vocabulary

__all__ = ["ItemBatches", "read_labeled_tsv", "names_by_language", "split_examples",
           "LabeledBatches", "collate", "NAME_LOCALES"]

# Latin-script locales of faker's person provider with 200 or more surnames, one per language.
NAME_LOCALES = ("cs_CZ", "de_DE", "en_US", "es_ES", "et_EE", "fi_FI", "fr_FR", "ga_IE",
                "hr_HR", "it_IT", "nl_NL", "sv_SE")


def read_labeled_tsv(path: str | Path, encoding: str = DEFAULT_ENCODING
                     ) -> list[tuple[str, str]]:
    """(text, label) pairs from `text<TAB>label` lines; blank lines are skipped.

    Raises:
        ValueError: a line without exactly two tab-separated columns or with an empty text or
            label (naming the file and line), a binary or undecodable file, or no lines.
    """
    pairs = []
    for n, (text, label) in read_tsv(path, 2, "text<TAB>label", encoding, "data file"):
        if not text or not label.strip():
            raise ValueError(f"{str(path)!r} line {n}: expected 'text<TAB>label' with both "
                             f"non-empty, got {text + chr(9) + label!r}")
        pairs.append((text, label.strip()))
    if not pairs:
        raise ValueError(f"{path} holds no 'text<TAB>label' lines")
    return pairs


def names_by_language(locales: Sequence[str] = NAME_LOCALES, min_names: int = 100
                      ) -> list[tuple[str, str]]:
    """Surnames labelled with their locale, from the `faker` package's person providers.

    A name listed under several locales is ambiguous and left out. Locales with fewer than
    `min_names` distinct names are refused.
    """
    try:
        importlib.import_module("faker")
    except ImportError as err:
        raise ImportError("the names data set needs the faker package: "
                          "pip install 'rnnkit[all]'") from err
    by_locale: dict[str, set[str]] = {}
    for loc in locales:
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except ModuleNotFoundError as err:
            raise ValueError(f"faker has no person provider for locale {loc!r}") from err
        names = set(getattr(provider, "last_names", ()))
        if len(names) < min_names:
            raise ValueError(f"locale {loc!r} has {len(names)} surnames, fewer than "
                             f"min_names={min_names}")
        by_locale[loc] = {n for n in names if n.strip()}
    seen: dict[str, int] = {}
    for names in by_locale.values():
        for n in names:
            seen[n] = seen.get(n, 0) + 1
    return sorted((n, loc) for loc, names in by_locale.items() for n in names if seen[n] == 1)


def split_examples(pairs: Sequence[tuple[str, str]], valid: float = 0.1, test: float = 0.1
                   ) -> tuple[list, list, list]:
    """A deterministic train/valid/test split by a hash of each text (stable across runs)."""
    parts: tuple[list, list, list] = ([], [], [])
    for text, label in pairs:
        u = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8
        parts[0 if u >= valid + test else 1 if u < valid else 2].append((text, label))
    return parts


class ItemBatches:
    """Batches of `self.items` ((input, label) pairs) in a seeded order per epoch, each collated
    by `collate_items` into (x, lengths, labels). Subclasses set the items and the collation.

    With `bucket = N > 0` (shuffled batches only), each epoch's shuffled items are cut into
    pools of N batches, each pool is sorted by input length and cut into batches, and the
    batches are shuffled: a batch holds inputs of similar length, so little of it is padding.
    """

    items: list
    batch_size: int
    shuffle: bool
    seed: int
    epoch: int = 0
    bucket: int = 0

    @staticmethod
    def collate_items(items: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Each epoch has its own (seeded) order."""
        self.epoch = epoch

    def _order(self) -> list[int]:
        """The epoch's order of the items (seeded; cached for the current epoch)."""
        key = (self.epoch, self.shuffle, self.bucket, len(self.items))
        cached = getattr(self, "_cached_order", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        order = list(range(len(self.items)))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(len(self.items), generator=g).tolist()
            if self.bucket > 0:
                pool, size = self.bucket * self.batch_size, self.batch_size
                batches = []
                for start in range(0, len(order), pool):
                    chunk = sorted(order[start:start + pool], key=lambda i: len(self.items[i][0]))
                    batches += [chunk[k:k + size] for k in range(0, len(chunk), size)]
                shuffled = torch.randperm(len(batches), generator=g).tolist()
                # the one short batch (the end of the last pool) goes last, so that every
                # other batch is a full slice of the order
                full = [batches[i] for i in shuffled if len(batches[i]) == size]
                short = [batches[i] for i in shuffled if len(batches[i]) != size]
                order = [i for b in full + short for i in b]
        self._cached_order = (key, order)
        return order

    def batch(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        order = self._order()
        chosen = [self.items[i] for i in order[index * self.batch_size:
                                               (index + 1) * self.batch_size]]
        return self.collate_items(chosen)

    def __iter__(self):
        return (self.batch(i) for i in range(len(self)))


class LabeledBatches(ItemBatches):
    """Shuffled padded batches of (ids (T, B), lengths (B,), labels (B,)); a BatchSource.

    `batch(i)` is deterministic given the seed, epoch and index, so a data position resumes
    exactly.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], vocab: Vocabulary,
                 labels: Sequence[str], batch_size: int, shuffle: bool = True,
                 seed: int = 0) -> None:
        if not pairs:
            raise ValueError("no examples to batch")
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted({label for _, label in pairs} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the model's {len(labels)} "
                             f"classes")
        self.items = [(vocab.encode(text), index[label]) for text, label in pairs]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch = 0

    @staticmethod
    def collate_items(items: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
        return collate(items)



def collate(items: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Pad (ids, label) items into x (T, B) (0 pads), lengths (B,) and labels (B,)."""
    lengths = torch.tensor([max(1, len(ids)) for ids, _ in items])
    x = torch.zeros(int(lengths.max()), len(items), dtype=torch.long)  # (T, B), 0 pads
    for b, (ids, _) in enumerate(items):
        x[: len(ids), b] = ids
    return x, lengths, torch.tensor([label for _, label in items])
