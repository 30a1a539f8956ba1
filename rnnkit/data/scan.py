"""SCAN (Lake & Baroni 2018): commands -> action sequences, simple and length splits."""

from __future__ import annotations

from pathlib import Path

from rnnkit.data.pairs import read_pairs

__all__ = ["SCAN_SPLITS", "scan_path", "load_scan", "DEFAULT_SCAN_ROOT"]

SCAN_SPLITS = ("simple", "length")
# Where the shared data sits for a developer checkout (the repository's sibling folder).
DEFAULT_SCAN_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scan"


def scan_path(root: str | Path, split: str = "simple", part: str = "train") -> Path:
    """The file `tasks_{part}_{split}.txt.gz` (or `.txt`) under `root`.

    Raises:
        ValueError: for an unknown split or part; FileNotFoundError when the file is missing.
    """
    if split not in SCAN_SPLITS:
        raise ValueError(f"split must be one of {SCAN_SPLITS}, got {split!r}")
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    for name in (f"tasks_{part}_{split}.txt.gz", f"tasks_{part}_{split}.txt"):
        if (Path(root) / name).exists():
            return Path(root) / name
    raise FileNotFoundError(f"no SCAN file tasks_{part}_{split}.txt[.gz] under {str(root)!r}")


def load_scan(root: str | Path = DEFAULT_SCAN_ROOT, split: str = "simple",
              part: str = "train") -> list[tuple[str, str]]:
    """(command, actions) pairs of one SCAN split, e.g. ('jump twice', 'I_JUMP I_JUMP')."""
    return read_pairs(scan_path(root, split, part))
