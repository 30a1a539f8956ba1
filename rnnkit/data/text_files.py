"""Checked readers of text files: binary files and undecodable bytes are refused, with the place."""

from __future__ import annotations

import codecs
import gzip
import os
from pathlib import Path

__all__ = ["read_text_file", "read_tsv", "check_encoding", "DEFAULT_ENCODING"]

DEFAULT_ENCODING = "utf-8"
# Encodings in which a NUL byte is an ordinary part of a character.
_WIDE = ("utf-16", "utf-32")


def check_encoding(encoding: str) -> str:
    """The codec's canonical name, or ValueError naming the unknown `encoding`."""
    try:
        return codecs.lookup(encoding).name
    except LookupError as err:
        raise ValueError(f"encoding {encoding!r} is not a known text encoding (e.g. utf-8, "
                         f"latin-1, cp1252, utf-16)") from err


def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"byte offset {offset} (line {line})"


def read_text_file(path: str | os.PathLike, encoding: str = DEFAULT_ENCODING,
                   what: str = "text file") -> str:
    """The text of `path` (gzip-compressed when it ends in .gz), decoded strictly.

    Args:
        encoding: the file's text encoding (default UTF-8; a UTF-8 byte-order mark is dropped).
        what: how error messages call the file ("pairs file", "data file", ...).

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: `path` is a folder.
        ValueError: the file looks binary (a NUL byte, outside UTF-16/32), or is not valid in
            `encoding`, naming the file, the byte offset and the line.
    """
    p = Path(path)
    codec = check_encoding(encoding)
    if not p.exists():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise IsADirectoryError(f"{what} {str(p)!r} is a directory; expected a file")
    data = p.read_bytes()
    if p.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"{what} {str(p)!r} ends in .gz but is not valid gzip: "
                             f"{err}") from err
    if not codec.startswith(_WIDE):
        nul = data.find(b"\x00")
        if nul >= 0:
            raise ValueError(f"{what} {str(p)!r} looks binary: a NUL byte at "
                             f"{_position(data, nul)}; expected {encoding} text")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 1].hex()
        raise ValueError(f"{what} {str(p)!r} is not valid {encoding} at "
                         f"{_position(data, err.start)}: byte 0x{bad}; pass its encoding "
                         f"with --encoding (e.g. --encoding latin-1)") from err
    if codec == "utf-8" and text.startswith("\ufeff"):
        text = text[1:]
    if codec.startswith(_WIDE) and "\x00" in text:
        at = text.index("\x00")
        raise ValueError(f"{what} {str(p)!r} looks binary: a NUL character at character "
                         f"{at}; expected {encoding} text")
    return text


def read_tsv(path: str | os.PathLike, columns: int, layout: str,
             encoding: str = DEFAULT_ENCODING, what: str = "TSV file"
             ) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line of a tab-separated file, checked.

    Args:
        columns: how many tab-separated fields every line must have.
        layout: the expected line, for messages (e.g. "source<TAB>target").

    Raises:
        ValueError: a line with another number of fields, naming the file, the line and
            the count (as well as the errors of `read_text_file`).
    """
    text = read_text_file(path, encoding, what)
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != columns:
            raise ValueError(f"{str(path)!r} line {n}: expected {columns} tab-separated "
                             f"columns ({layout}), got {len(fields)}: {line[:60]!r}")
        rows.append((n, fields))
    return rows
