"""Text corpora for language models: read a file or a folder, the default corpus, the split."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from rnnkit.data.text_files import DEFAULT_ENCODING, read_text_file

__all__ = ["load_text", "split_text", "default_corpus_files", "TEXT_SUFFIXES"]

# File types read when the data path is a folder.
TEXT_SUFFIXES = (".txt", ".py", ".md", ".rst", ".text")
# Folders of the standard library left out of the default corpus: test suites (about half of
# the library, much of it data-like) and installed third-party packages.
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}


def default_corpus_files() -> list[Path]:
    """The Python standard library's own `.py` files, sorted: present on every Python install."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return sorted(files)


def _files_under(path: Path) -> list[Path]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    if not files:
        raise ValueError(f"data folder {str(path)!r} holds no text files "
                         f"(looked for {', '.join(TEXT_SUFFIXES)})")
    return files


def load_text(path: str | os.PathLike | None = None, max_chars: int = 0,
              encoding: str = DEFAULT_ENCODING) -> str:
    """Read the training text.

    Args:
        path: a text file, a folder (every text file under it, sorted by path, joined by
            newlines), or None for the default corpus (the standard library's source).
        max_chars: keep only the first `max_chars` characters (0: all).
        encoding: the files' encoding (the default corpus is always UTF-8).

    Raises:
        ValueError: a binary or undecodable file (naming it and the byte offset), a negative
            `max_chars`, or no text at all.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 0:
        raise ValueError(f"max_chars must be an int >= 0 (0: all), got {max_chars!r}")
    if path is None:
        encoding = DEFAULT_ENCODING
        files = default_corpus_files()
    else:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"data path {str(p)!r} does not exist")
        files = _files_under(p) if p.is_dir() else [p]
    parts: list[str] = []
    total = 0
    for f in files:
        text = read_text_file(f, encoding, "data file")
        parts.append(text)
        total += len(text) + 1
        if max_chars and total >= max_chars:
            break
    text = "\n".join(parts)
    if max_chars:
        text = text[:max_chars]
    if not text:
        raise ValueError(f"data path {str(path)!r} holds no text")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """First `1 - val_fraction` of the text for training, the rest for validation (no shuffling)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = int(len(text) * (1.0 - val_fraction))
    return text[:n], text[n:]
