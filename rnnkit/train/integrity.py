"""Checkpoint integrity: a manifest of sha256 checksums, written last, verified on every load."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_FILE", "CheckpointError", "UncheckedCheckpointWarning", "write_manifest",
           "verify_checkpoint", "read_json", "file_sha256"]

MANIFEST_FILE = "manifest.json"
_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, tampered with or unreadable (a user error: the CLI
    reports it in one line)."""


class UncheckedCheckpointWarning(UserWarning):
    """A checkpoint written before rnnkit recorded checksums: loaded without verification."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: str | os.PathLike) -> Path:
    """Record the size and sha256 of every file in `folder` in `folder/manifest.json`.

    Written last (after the other files are complete), so a folder with a manifest holds a
    checkpoint that was finished.
    """
    d = Path(folder)
    files = {f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
             for f in sorted(d.iterdir()) if f.is_file() and f.name != MANIFEST_FILE}
    path = d / MANIFEST_FILE
    path.write_text(json.dumps({"format": _FORMAT, "files": files}, indent=2) + "\n",
                    encoding="utf-8")
    return path


def read_json(path: Path) -> Any:
    """A JSON file of a checkpoint, or CheckpointError naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint file {str(path)!r} is not valid JSON ({err}); "
                              f"it was truncated or edited") from err


def verify_checkpoint(folder: str | os.PathLike, required: tuple[str, ...] = ()) -> bool:
    """Check every file listed in `folder/manifest.json` against its size and sha256.

    Returns True when verified; False (with an UncheckedCheckpointWarning) for a checkpoint
    written without a manifest, which is loaded as it is.

    Raises:
        CheckpointError: naming the first file that is missing, truncated or altered, or a
            `required` file the manifest does not list.
    """
    d = Path(folder)
    path = d / MANIFEST_FILE
    if not path.exists():
        warnings.warn(f"checkpoint {str(d)!r} has no {MANIFEST_FILE} (written before rnnkit "
                      f"recorded checksums): loading it unverified", UncheckedCheckpointWarning,
                      stacklevel=2)
        return False
    manifest = read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} has no 'files' table")
    for name in required:
        if name not in files:
            raise CheckpointError(f"checkpoint {str(d)!r}: {name} is not in its "
                                  f"{MANIFEST_FILE}")
    for name, entry in files.items():
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint file {str(f)!r} is missing")
        size = f.stat().st_size
        if size != entry.get("bytes"):
            raise CheckpointError(f"checkpoint file {str(f)!r} has {size} bytes, expected "
                                  f"{entry.get('bytes')}: it was truncated or altered")
        if file_sha256(f) != entry.get("sha256"):
            raise CheckpointError(f"checkpoint file {str(f)!r} fails its sha256 check "
                                  f"(recorded in {MANIFEST_FILE}): it was altered or corrupted")
    return True
