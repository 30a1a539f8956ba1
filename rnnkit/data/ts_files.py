"""UCR/UEA `.ts` time-series files: a strict reader, and the data sets bundled with aeon.

A `.ts` file has `@key value` header lines (`@dimensions`, `@equalLength`, `@classLabel true
a b c`, ...), `#` comments, then after `@data` one series per line: the channels separated by
`:`, the values of a channel by `,`, the class label last (`1.0,2.0,3.0:4.0,5.0,6.0:label`).
Missing values are `?`; channels of one series may differ in length only at their ends (they
are padded with NaN here, and a series' length is its longest channel).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from rnnkit.data.text_files import DEFAULT_ENCODING, read_text_file

__all__ = ["TSData", "read_ts", "aeon_data_dir", "ucr_names", "ucr_path", "load_ucr",
           "UCR_PREFIX"]

UCR_PREFIX = "ucr:"


class TSData:
    """Series and their labels from one `.ts` file.

    Attributes:
        series: one float32 array (T_n, C) per series (T_n may differ between series).
        labels: the class label of each series (strings).
        classes: the labels the header declares (`@classLabel true ...`), else the sorted
            labels found.
        name: the `@problemName`, or the file's stem.
    """

    def __init__(self, series: list[np.ndarray], labels: list[str], classes: list[str],
                 name: str) -> None:
        self.series, self.labels, self.classes, self.name = series, labels, classes, name

    def __len__(self) -> int:
        return len(self.series)

    @property
    def channels(self) -> int:
        return int(self.series[0].shape[1]) if self.series else 0


def _parse_values(text: str, where: str) -> list[float]:
    out = []
    for v in text.split(","):
        v = v.strip()
        if v == "?" or v.lower() == "nan":
            out.append(math.nan)
            continue
        try:
            out.append(float(v))
        except ValueError:
            raise ValueError(f"{where}: expected comma-separated numbers (or '?'), got "
                             f"{v[:40]!r}") from None
    return out


def read_ts(path: str | os.PathLike, encoding: str = DEFAULT_ENCODING) -> TSData:
    """Read a labelled `.ts` file (see the module docstring for the format).

    Raises:
        ValueError: naming the file and line: a series whose channel count differs from
            `@dimensions` or from the first series, a value that is not a number, a label not
            among `@classLabel`'s, time-stamped values `(t,v)` (not supported), an unlabelled
            file, or a file with no `@data` section or no series.
        OSError: the file cannot be read.
    """
    text = read_text_file(path, encoding, "series file")
    header: dict[str, list[str]] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    channels = None
    in_data = False
    name = Path(path).stem
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{str(path)!r} line {n}"
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{where}: expected an '@key value' header line or '@data' "
                                 f"before the series, got {line[:40]!r}")
            key, *values = line.split()
            key = key.lower()
            if key == "@data":
                in_data = True
                if header.get("@classlabel", ["false"])[0].lower() != "true":
                    raise ValueError(f"{where}: the header does not declare '@classLabel "
                                     f"true ...'; classification needs labelled series")
                if header.get("@timestamps", ["false"])[0].lower() == "true":
                    raise ValueError(f"{where}: time-stamped series (@timeStamps true) are "
                                     f"not supported; expected plain comma-separated values")
                dims = header.get("@dimensions")
                channels = int(dims[0]) if dims and dims[0].isdigit() else None
            else:
                header[key] = values
                if key == "@problemname" and values:
                    name = values[0]
            continue
        parts = line.split(":")
        if len(parts) < 2:
            raise ValueError(f"{where}: expected 'values:...:values:label', got {line[:40]!r}")
        label = parts[-1].strip()
        if "(" in line:
            raise ValueError(f"{where}: time-stamped values '(t,v)' are not supported")
        chans = [_parse_values(p, where) for p in parts[:-1]]
        if channels is None:
            channels = len(chans)
        if len(chans) != channels:
            raise ValueError(f"{where}: {len(chans)} channels, expected {channels} (from "
                             f"@dimensions or the first series)")
        length = max(len(c) for c in chans)
        arr = np.full((length, channels), np.nan, dtype=np.float32)  # (T, C)
        for c, values in enumerate(chans):
            arr[: len(values), c] = values
        series.append(arr)
        labels.append(label)
    if not in_data:
        raise ValueError(f"{str(path)!r} has no '@data' line; expected a .ts file")
    if not series:
        raise ValueError(f"{str(path)!r} holds no series after '@data'")
    declared = header.get("@classlabel", [])[1:]
    if declared:
        unknown = sorted(set(labels) - set(declared))
        if unknown:
            raise ValueError(f"{str(path)!r}: labels {unknown[:5]} are not among the "
                             f"@classLabel ones {declared[:10]}")
    return TSData(series, labels, declared or sorted(set(labels)), name)


def aeon_data_dir() -> Path:
    """The folder of data sets bundled with the installed aeon package (aeon is not
    imported: only located).

    Raises:
        ImportError: aeon is not installed.
    """
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the ucr:NAME data sets are read from the aeon package: "
                          "pip install 'rnnkit[all]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def ucr_names() -> list[str]:
    """The classification data sets aeon bundles as `NAME/NAME_TRAIN.ts` + `NAME_TEST.ts`."""
    root = aeon_data_dir()
    return sorted(p.name for p in root.iterdir()
                  if (p / f"{p.name}_TRAIN.ts").is_file() and (p / f"{p.name}_TEST.ts").is_file())


def ucr_path(name: str, split: str) -> Path:
    """The `.ts` file of the bundled data set `name`, split "train" or "test"."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = aeon_data_dir() / name / f"{name}_{split.upper()}.ts"
    if not path.is_file():
        raise ValueError(f"data set {name!r} is not bundled with aeon; expected one of "
                         f"{ucr_names()}")
    return path


def load_ucr(name: str, split: str) -> TSData:
    """A bundled UCR/UEA data set's "train" or "test" split (`name` with or without the
    `ucr:` prefix)."""
    if name.startswith(UCR_PREFIX):
        name = name[len(UCR_PREFIX):]
    return read_ts(ucr_path(name, split))
