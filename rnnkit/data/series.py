"""Labelled real-valued series for classification: per-channel scaling, splits, padded batches."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.labeled import ItemBatches

__all__ = ["Standardizer", "SeriesBatches", "collate_series", "stratified_split"]


class Standardizer:
    """Per-channel standardisation `(x - mean) / std`, the statistics taken from training
    series only (over every valid step of every series; NaN steps are ignored and become 0
    after scaling, the channel's mean).

    Example:
        >>> import numpy as np
        >>> s = Standardizer.fit([np.array([[0.0, 10.0], [2.0, 10.0]], dtype=np.float32)])
        >>> s.mean, s.std
        ([1.0, 10.0], [1.0, 1.0])
        >>> s.transform(np.array([[3.0, 10.0]], dtype=np.float32)).tolist()
        [[2.0, 0.0]]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    @classmethod
    def fit(cls, series: Sequence[np.ndarray]) -> Standardizer:
        """Statistics of the (T_n, C) arrays in `series`; a constant channel gets std 1."""
        if not series:
            raise ValueError("no series to take scaling statistics from")
        steps = np.concatenate([np.asarray(s, dtype=np.float64) for s in series])  # (sum T, C)
        if np.isnan(steps).all(axis=0).any():
            raise ValueError("a channel has no finite value in the training series")
        mean = np.nanmean(steps, axis=0)
        std = np.nanstd(steps, axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean.tolist(), std.tolist())

    @property
    def channels(self) -> int:
        return len(self.mean)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(T, C) -> (T, C) float32, standardised, NaN -> 0."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"series must be (T, {self.channels}) (the training data's "
                             f"channels), got shape {x.shape}")
        out = (x - np.asarray(self.mean)) / np.asarray(self.std)
        return np.nan_to_num(out, nan=0.0).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-ready form, stored in a checkpoint's config.json."""
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        return cls(d["mean"], d["std"])


def stratified_split(labels: Sequence[str], fraction: float, seed: int
                     ) -> tuple[list[int], list[int]]:
    """Indices (kept, held out): about `fraction` of each class held out (at least one when a
    class has two or more members), chosen by a seeded hash of the index.

    Example:
        >>> kept, held = stratified_split(["a"] * 10 + ["b"] * 10, 0.2, seed=0)
        >>> len(held), sorted({["a", "b"][i >= 10] for i in held})
        (4, ['a', 'b'])
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    held: list[int] = []
    for members in by_class.values():
        ranked = sorted(members, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
        n = round(fraction * len(members))
        if fraction > 0 and len(members) >= 2:
            n = max(n, 1)
        held += ranked[:n]
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


class SeriesBatches(ItemBatches):
    """Shuffled padded batches of (x (T, B, C), lengths (B,), labels (B,)); a BatchSource.

    Args:
        series: standardised (T_n, C) float32 arrays.
        targets: class index of each series.
    """

    def __init__(self, series: Sequence[np.ndarray], targets: Sequence[int], batch_size: int,
                 shuffle: bool = True, seed: int = 0) -> None:
        if not series:
            raise ValueError("no series to batch")
        if len(series) != len(targets):
            raise ValueError(f"{len(series)} series but {len(targets)} labels")
        self.items = [(torch.from_numpy(np.ascontiguousarray(s)), int(y))
                      for s, y in zip(series, targets, strict=True)]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch = 0

    @staticmethod
    def collate_items(items: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
        return collate_series(items)


def collate_series(items: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Pad ((T_n, C) series, label) items into x (T, B, C) (zeros past each length), lengths
    (B,) and labels (B,)."""
    lengths = torch.tensor([max(1, s.shape[0]) for s, _ in items])
    C = items[0][0].shape[1]
    x = torch.zeros(int(lengths.max()), len(items), C)  # (T, B, C)
    for b, (s, _) in enumerate(items):
        x[: s.shape[0], b] = s
    return x, lengths, torch.tensor([label for _, label in items])
