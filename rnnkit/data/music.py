"""Polyphonic music as piano rolls: .mat loaders (JSB Chorales, Nottingham) and batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["load_piano_rolls", "PianoRollBatches", "collate_rolls", "resolve_music_data",
           "NUM_KEYS", "SPLITS", "DATA_SETS", "DEFAULT_DATA_DIR"]

NUM_KEYS = 88  # column k is piano key k + 1 and MIDI note k + 21 (A0..C8: MIDI 21..108)
SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
DATA_SETS = {"jsb": "JSB_Chorales.mat", "nottingham": "Nottingham.mat"}  # short names
DEFAULT_DATA_DIR = "../shared/data/polymusic"


def resolve_music_data(spec: str, data_dir: str | Path = DEFAULT_DATA_DIR
                       ) -> list[tuple[str, Path]]:
    """(name, file) for each comma-separated entry of `spec`: a short name of `DATA_SETS`
    (looked up in `data_dir`) or a path to a .mat file (named by its short name when its file
    name is a known one, else by its stem). The names are the styles of a conditional model.

    Example:
        >>> [(n, p.name) for n, p in resolve_music_data("jsb,x/My.mat", "d")]
        [('jsb', 'JSB_Chorales.mat'), ('my', 'My.mat')]
    """
    out: list[tuple[str, Path]] = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            raise ValueError(f"data {spec!r} has an empty entry; expected FILE.mat or one of "
                             f"{sorted(DATA_SETS)}, separated by commas")
        if entry.lower() in DATA_SETS:
            name, path = entry.lower(), Path(data_dir) / DATA_SETS[entry.lower()]
        else:
            path = Path(entry)
            known = {v.lower(): k for k, v in DATA_SETS.items()}
            name = known.get(path.name.lower(), path.stem.lower())
        if name in (n for n, _ in out):
            raise ValueError(f"data {spec!r} names {name!r} twice")
        out.append((name, path))
    return out


def load_piano_rolls(path: str | Path, split: str = "train") -> list[Tensor]:
    """The pieces of one split of a piano-roll .mat file, each a (T, 88) float32 0/1 tensor.

    The file holds `traindata`, `validdata` and `testdata` cell arrays of (T, 88) binary
    matrices (the layout of Boulanger-Lewandowski et al.'s data sets as distributed with the
    TCN benchmarks). Needs scipy (`pip install 'rnnkit[all]'`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError("reading .mat piano rolls needs scipy: pip install 'rnnkit[all]'") \
            from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no piano-roll file at {str(path)!r}")
    try:
        data = loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, ... on non-.mat
        raise ValueError(f"piano-roll file {str(path)!r} is not a readable .mat file "
                         f"({type(err).__name__}: {str(err)[:100]})") from err
    key = SPLITS[split]
    if key not in data:
        raise ValueError(f"{path.name} has no {key!r} array; found "
                         f"{sorted(k for k in data if not k.startswith('__'))}")
    pieces = [torch.as_tensor(piece, dtype=torch.float32) for piece in data[key].ravel()]
    for i, p in enumerate(pieces):
        if p.dim() != 2 or p.shape[1] != NUM_KEYS:
            raise ValueError(f"{path.name} {key}[{i}] has shape {tuple(p.shape)}; expected "
                             f"(T, {NUM_KEYS})")
    return pieces


def collate_rolls(pieces: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Next-frame pairs, padded: x (T-1, B, 88) frames 1..T-1, y the frames 2..T, lengths (B,)."""
    lengths = torch.tensor([max(1, len(p) - 1) for p in pieces])
    T = int(lengths.max())
    x = torch.zeros(T, len(pieces), NUM_KEYS)
    y = torch.zeros(T, len(pieces), NUM_KEYS)
    for b, p in enumerate(pieces):
        n = len(p) - 1
        x[:n, b], y[:n, b] = p[:-1], p[1:]
    return x, y, lengths


class PianoRollBatches:
    """Shuffled batches of whole pieces (a BatchSource: `len`, `batch(i)`, `set_epoch`)."""

    def __init__(self, pieces: Sequence[Tensor], batch_size: int, shuffle: bool = True,
                 seed: int = 0, styles: Sequence[int] | None = None) -> None:
        keep = [i for i, p in enumerate(pieces) if len(p) >= 2]
        if not keep:
            raise ValueError("no piece has two or more frames")
        if styles is not None and len(styles) != len(pieces):
            raise ValueError(f"styles gives {len(styles)} styles for {len(pieces)} pieces")
        self.pieces = [pieces[i] for i in keep]
        self.styles = None if styles is None else torch.tensor([styles[i] for i in keep])
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.pieces) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batch(self, index: int) -> tuple[Tensor, ...]:
        """(x, y, lengths) as `collate_rolls`, and each piece's style index (B,) when the
        batches were given styles."""
        order = torch.arange(len(self.pieces))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(len(self.pieces), generator=g)
        chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
        batch = collate_rolls([self.pieces[int(i)] for i in chosen])
        return batch if self.styles is None else (*batch, self.styles[chosen])

    def __iter__(self):
        return (self.batch(i) for i in range(len(self)))
