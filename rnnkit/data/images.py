"""Labelled images for classifiers that read them as sequences: the idx file format,
Fashion-MNIST (Debian package `dataset-fashion-mnist`), scikit-learn's 8x8 digits, a user's
own idx files, seeded splits and batches of images as (rows, batch, cols) tensors.

Specs (`--data`, `--test`): `fashion-mnist`, `digits`, a directory holding MNIST-style idx
files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, and for testing
`t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`), or one images idx file whose
labels sit beside it under the same name with `images-idx3` replaced by `labels-idx1`.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_idx", "write_idx", "ImageSet", "ImageBatches", "is_image_spec",
           "load_images", "image_splits", "FASHION_MNIST_DIR", "FASHION_CLASSES",
           "INSTALL_HINT", "IMAGE_SETS"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
IMAGE_SETS = ("fashion-mnist", "digits")
DIGITS_TEST_FRACTION = 0.2

# idx type code -> (numpy big-endian dtype, name)
_IDX_TYPES = {0x08: (">u1", "unsigned byte"), 0x09: (">i1", "signed byte"),
              0x0B: (">i2", "short"), 0x0C: (">i4", "int"), 0x0D: (">f4", "float"),
              0x0E: (">f8", "double")}
_IDX_NAME = re.compile(r"idx\d", re.IGNORECASE)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an idx file (LeCun's MNIST format), gzip-compressed or not.

    Layout: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B short,
    0x0C int, 0x0D float, 0x0E double), the number of dimensions n, n big-endian uint32 sizes,
    then the values, big-endian, in C order. Compression is detected from the bytes (gzip's
    1f 8b), not from the name.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file: a bad gzip stream, a header that is not idx, an unknown
            type code, or a value count that does not match the sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{str(path)!r}: a gzip file that cannot be decompressed "
                             f"({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{str(path)!r}: not an idx file (expected the magic number "
                         f"00 00 TYPE NDIM in the first 4 bytes, got {raw[:4].hex(' ')!r})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X} {name}" for c, (_, name) in _IDX_TYPES.items())
        raise ValueError(f"{str(path)!r}: unknown idx type code 0x{code:02X} in byte 2 "
                         f"(expected one of {known})")
    if ndim < 1:
        raise ValueError(f"{str(path)!r}: the idx header declares 0 dimensions (byte 3)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r}: the file ends inside its header ({len(raw)} bytes; "
                         f"{ndim} dimensions need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code][0])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{str(path)!r}: the header declares sizes {dims} of "
                         f"{_IDX_TYPES[code][1]} ({expected:,} bytes of data after the "
                         f"{header}-byte header) but the file holds {len(raw) - header:,}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Write `array` (uint8, int8, int16, int32, float32 or float64) as an idx file."""
    array = np.asarray(array)
    codes = {np.dtype(t).newbyteorder("=").str: c for c, (t, _) in _IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("=").str)
    if code is None or array.ndim < 1:
        raise ValueError(f"idx holds arrays of >= 1 dimension of {sorted(codes)}, got "
                         f"{array.dtype} with {array.ndim} dimensions")
    data = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + \
        array.astype(_IDX_TYPES[code][0]).tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)


@dataclass
class ImageSet:
    """Images (N, R, C) of any numeric dtype, their class indices (N,) int64, the class names
    and `scale`, the value that maps to 1.0 (255 for bytes, 16 for the 8x8 digits)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    scale: float
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes, self.scale,
                        self.source)

    def floats(self, index: np.ndarray | None = None) -> Tensor:
        """Images (or those at `index`) as float32 in [0, 1] for byte images: (n, R, C)."""
        chosen = self.images if index is None else self.images[index]
        return torch.from_numpy(np.asarray(chosen, dtype=np.float32) / self.scale)


def is_image_spec(spec: str) -> bool:
    """True for `fashion-mnist`, `digits`, a directory, or a file named like an idx file."""
    if spec in IMAGE_SETS:
        return True
    p = Path(spec)
    return p.is_dir() or bool(_IDX_NAME.search(p.name)) or p.name.lower().endswith(
        (".idx", ".idx.gz"))


def _find(directory: Path, prefix: str, kind: str) -> Path:
    names = [f"{prefix}-{kind}-ubyte", f"{prefix}-{kind}-ubyte.gz"]
    for n in names:
        if (directory / n).is_file():
            return directory / n
    raise FileNotFoundError(f"directory {str(directory)!r} holds neither {names[0]!r} nor "
                            f"{names[1]!r}")


def _labels_beside(images: Path) -> Path:
    """The labels file of an images file: the same name with 'images-idx3' replaced by
    'labels-idx1', gzip-compressed or not."""
    name = re.sub("images-idx3", "labels-idx1", images.name, flags=re.IGNORECASE)
    if name == images.name:
        raise ValueError(f"images file {str(images)!r}: its labels are looked up under the "
                         f"same name with 'images-idx3' replaced by 'labels-idx1', but the "
                         f"name holds no 'images-idx3' (e.g. train-images-idx3-ubyte.gz)")
    plain = name[:-3] if name.endswith(".gz") else name
    for candidate in (images.with_name(name), images.with_name(plain),
                      images.with_name(plain + ".gz")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"images file {str(images)!r} has no labels file "
                            f"{str(images.with_name(name))!r} (or {plain!r} / {plain}.gz) "
                            f"beside it")


def _has_labels(images: Path) -> bool:
    try:
        _labels_beside(images)
    except (ValueError, FileNotFoundError):
        return False
    return True


def _read_pair(images_path: Path, labels_path: Path | None,
               images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, R, C) and labels (N,) int64 (all -1 without `labels_path`)."""
    images = read_idx(images_path) if images is None else images
    if images.ndim != 3:
        raise ValueError(f"{str(images_path)!r}: expected images of shape (N, rows, cols), "
                         f"got {images.ndim} dimensions {images.shape}")
    if labels_path is None:
        return images, np.full(len(images), -1, np.int64)
    labels = read_idx(labels_path)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{str(labels_path)!r}: expected one integer label per image, got "
                         f"{labels.dtype} of shape {labels.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{str(images_path)!r} holds {len(images)} images but "
                         f"{str(labels_path)!r} holds {len(labels)} labels")
    if len(labels) and labels.min() < 0:
        raise ValueError(f"{str(labels_path)!r}: labels must be >= 0, got {labels.min()}")
    return images, labels.astype(np.int64)


def _digits() -> ImageSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("--data digits needs scikit-learn: pip install 'rnnkit[all]'") \
            from err
    d = load_digits()
    return ImageSet(d.images.astype(np.uint8), d.target.astype(np.int64),
                    [str(c) for c in range(10)], 16.0, "digits")


def load_images(spec: str, part: str = "train", need_labels: bool = True) -> ImageSet:
    """The images of `spec` (see the module docstring); `part` "train" or "test" picks the
    train- or t10k- files of Fashion-MNIST and of a directory (the digits come whole: see
    `image_splits`). An images file is read whatever `part` says; without `need_labels`, one
    with no labels file beside it gets the label -1 (unknown) for every image."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    if spec == "digits":
        return _digits()
    prefix = "train" if part == "train" else "t10k"
    if spec == "fashion-mnist":
        if not FASHION_MNIST_DIR.is_dir():
            raise FileNotFoundError(f"Fashion-MNIST is not installed (no {FASHION_MNIST_DIR});"
                                    f" install it with: {INSTALL_HINT}")
        directory = FASHION_MNIST_DIR
    else:
        directory = Path(spec)
    if directory.is_dir():
        images, labels = _read_pair(_find(directory, prefix, "images-idx3"),
                                    _find(directory, prefix, "labels-idx1"))
    elif not need_labels and not _has_labels(directory):
        images = read_idx(directory)
        images, labels = _read_pair(directory, None, images)
    else:
        images, labels = _read_pair(directory, _labels_beside(directory))
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    n_classes = int(labels.max()) + 1 if len(labels) else 0  # -1: unknown labels
    classes = list(FASHION_CLASSES) if spec == "fashion-mnist" else \
        [str(c) for c in range(n_classes)]
    return ImageSet(images, labels, classes, scale, spec)


def _stratified(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices: `fraction` of each class held out, by a seeded permutation."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = round(fraction * len(members))
        held.append(rng.permutation(members)[:n])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    mask = np.ones(len(labels), bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def image_splits(spec: str, valid_fraction: float = 0.1, split_seed: int = 0
                 ) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    """(train, valid, test): `valid_fraction` of each class of the training images held out
    for validation (seeded by `split_seed`); test is the t10k part (Fashion-MNIST, a directory
    that has one), a seeded 20% of the digits, or None."""
    whole = load_images(spec, "train")
    test = None
    if spec == "digits":
        whole_idx, test_idx = _stratified(whole.labels, DIGITS_TEST_FRACTION, split_seed)
        test, whole = whole.subset(test_idx), whole.subset(whole_idx)
    elif spec == "fashion-mnist" or Path(spec).is_dir():
        try:
            test = load_images(spec, "test")
        except FileNotFoundError:
            if spec == "fashion-mnist":
                raise
    keep, held = _stratified(whole.labels, valid_fraction, split_seed + 1)
    return whole.subset(keep), whole.subset(held), test


class ImageBatches:
    """Batches (x (R, B, C) float32, y (B,) int64) of an ImageSet, normalised as
    `(pixel / scale - mean) / std`, shuffled by a seeded order per epoch; a BatchSource."""

    def __init__(self, data: ImageSet, batch_size: int, mean: float, std: float,
                 shuffle: bool = True, seed: int = 0) -> None:
        if len(data) == 0:
            raise ValueError(f"no images to batch in {data.source!r}")
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.mean, self.std = mean, std
        self.epoch = 0
        self._order: tuple[int, Tensor] | None = None

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_order(self) -> Tensor:
        if self._order is None or self._order[0] != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            self._order = (self.epoch, torch.randperm(len(self.data), generator=g))
        return self._order[1]

    def batch(self, index: int) -> tuple[Tensor, Tensor]:
        lo, hi = index * self.batch_size, (index + 1) * self.batch_size
        chosen = (self._epoch_order()[lo:hi] if self.shuffle else torch.arange(
            lo, min(hi, len(self.data)))).numpy()
        x = (self.data.floats(chosen) - self.mean) / self.std  # (B, R, C)
        return x.transpose(0, 1).contiguous(), torch.from_numpy(self.data.labels[chosen])

    def __iter__(self):
        return (self.batch(i) for i in range(len(self)))
