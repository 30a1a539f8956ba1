"""Run directories: the lock, no silent overwrite, --overwrite, stale temporaries, resume checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rnnkit.train import distributed

__all__ = ["LOCK_FILE", "RUN_FILES", "RunInUseError", "RunExistsError", "ResumeMismatchError",
           "open_run", "acquire_lock", "release_lock", "holds_run", "clear_run", "run_progress",
           "clean_stale", "fingerprint", "resume_mismatches", "pid_alive"]

LOCK_FILE = ".rnnkit.lock"
# What a run writes into its directory (and --overwrite removes); nothing else is touched.
RUN_FILES = ("config.json", "metrics.jsonl", "loss.png", "summary.json", "best", "last",
             "best.old", "last.old")
# Temporaries of checkpoint saves: `.last.tmp-PID`, `.best.old.trash-PID`, ...
_TEMP_RE = re.compile(r"^\.(?:best|last)(?:\.old)?\.(?:tmp|trash)-(\d+)$")


class RunInUseError(ValueError):
    """Another live process holds the run directory's lock."""


class RunExistsError(ValueError):
    """The run directory already holds a run and neither resume nor overwrite was asked for."""


class ResumeMismatchError(ValueError):
    """The saved run differs from the one being resumed (task, data, vocabulary or model)."""


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child nobody has waited for is a zombie: it holds nothing any more
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def acquire_lock(out: Path, log: Callable[[str], None] | None = None) -> Path:
    """Create `out/.rnnkit.lock` holding this process's pid and host, or refuse.

    A lock left by a process that no longer runs (killed, e.g. by SIGKILL) on this host is
    stale: it is taken over, with a note in the log.

    Raises:
        RunInUseError: a live process holds the lock.
    """
    path = out / LOCK_FILE
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read_lock(path)
            pid, host = held.get("pid"), held.get("host")
            if not isinstance(pid, int):
                if time.time() - path.stat().st_mtime < 5.0:  # being written right now
                    time.sleep(0.2)
                    continue
            elif host != mine["host"]:
                raise RunInUseError(
                    f"run directory {str(out)!r} is locked by process {pid} on host {host!r} "
                    f"({path}); if no run is active there, delete that file") from None
            elif pid_alive(pid):
                raise RunInUseError(
                    f"run directory {str(out)!r} is in use by process {pid} (lock {path}); "
                    f"wait for it to finish or choose another --out") from None
            stale = path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, stale)
                stale.unlink()
                if log is not None:
                    log(f"note: took over the stale lock of process {pid} (no longer running)")
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(mine, fh)
        return path
    raise RunInUseError(f"could not lock run directory {str(out)!r} ({path}): another process "
                        f"keeps taking it")


def release_lock(out: Path) -> None:
    """Remove the lock if this process holds it."""
    path = out / LOCK_FILE
    if _read_lock(path).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def holds_run(out: Path) -> bool:
    """Whether `out` holds files of an earlier run."""
    return any((out / name).exists() for name in RUN_FILES)


def run_progress(out: Path) -> list[tuple[str, int]]:
    """What a run has written so far besides config.json: (name, mtime) of the run files and
    of each checkpoint's trainer.json, to tell whether a failed start wrote anything."""
    seen = []
    for name in RUN_FILES[1:]:
        for p in (out / name, out / name / "trainer.json"):
            if p.exists():
                seen.append((str(p.relative_to(out)), p.stat().st_mtime_ns))
    return seen


def clear_run(out: Path) -> None:
    """Remove an earlier run's files (RUN_FILES and save temporaries) from `out`."""
    for name in RUN_FILES:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    clean_stale(out, dead_only=False)


def clean_stale(out: Path, dead_only: bool = True) -> list[str]:
    """Remove save temporaries (`.last.tmp-PID`, `.best.old.trash-PID`, ...) left by processes
    that died mid-save; returns their names."""
    removed = []
    for p in out.iterdir() if out.is_dir() else []:
        m = _TEMP_RE.match(p.name)
        if not m or (dead_only and pid_alive(int(m.group(1)))):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def fingerprint(*parts: Any) -> str:
    """A short sha256 of the data a run trains on (texts, pairs, ... as their JSON)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _describe(key: str, saved: Any, now: Any) -> str:
    if isinstance(saved, dict) and "tokens" in saved and isinstance(now, dict):
        a, b = list(saved.get("tokens", [])), list(now.get("tokens", []))
        extra = [t for t in b if t not in set(a)][:3]
        return (f"{key} (saved {len(a)} {saved.get('level', '')} tokens, now {len(b)}"
                + (f", new: {', '.join(map(repr, extra))}" if extra else "") + ")")
    if isinstance(saved, list) and isinstance(now, list):
        return f"{key} (saved {len(saved)}, now {len(now)})"
    return f"{key} (saved {saved!r}, now {now!r})"


def resume_mismatches(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a saved checkpoint's config.json and the run being resumed: the
    task (model class), the data fingerprint, the vocabularies / labels, each model argument.
    Keys the saved run lacks (older checkpoints) are not compared."""
    out = []
    for key in ("model_class", "data_fingerprint", "vocab", "src_vocab", "tgt_vocab", "labels"):
        if key in saved and key in current and saved[key] != current[key]:
            out.append(_describe({"model_class": "task"}.get(key, key), saved[key],
                                 current[key]))
    a, b = saved.get("model_args") or {}, current.get("model_args") or {}
    if saved.get("model_class") == current.get("model_class"):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out.append(_describe(f"model_args.{k}", a.get(k), b.get(k)))
    return out


@contextlib.contextmanager
def open_run(out: str | os.PathLike, resume: bool = False, overwrite: bool = False,
             log: Callable[[str], None] | None = print) -> Iterator[Path]:
    """Hold the run directory `out` for one training run.

    Creates it, takes its lock (released on exit), refuses an existing run unless `resume`
    (continue it) or `overwrite` (its files are removed first), and cleans temporaries that
    dead processes left. In a multi-process run rank 0 alone does this and holds `out`; the
    other ranks learn its outcome (its error, if any) and get a scratch folder, removed at
    the end, for the little they write (config.json).

    Raises:
        NotADirectoryError: `out` is a file. RunInUseError, RunExistsError: see above.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: --resume continues the run "
                         "in --out, --overwrite replaces it")
    d = Path(out)
    created = distributed.from_main(lambda: _enter(d, resume, overwrite, log))
    if not distributed.is_main():
        with tempfile.TemporaryDirectory(prefix=f"rnnkit-rank{distributed.rank()}-") as scratch:
            yield Path(scratch)
        return
    try:
        yield d
    finally:
        _leave(d, created)


def _enter(d: Path, resume: bool, overwrite: bool, log: Callable[[str], None] | None) -> bool:
    """open_run's checks and set-up; returns whether it created the directory."""
    if d.exists() and not d.is_dir():
        raise NotADirectoryError(f"out {str(d)!r} is a file; expected a run directory")
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    acquire_lock(d, log)
    try:
        stale = clean_stale(d)
        if stale and log is not None:
            log(f"note: removed {len(stale)} unfinished checkpoint save(s) of dead processes: "
                f"{', '.join(stale)}")
        if holds_run(d) and not resume:
            if not overwrite:
                raise RunExistsError(
                    f"out {str(d)!r} already holds a run; pass --resume to continue it or "
                    f"--overwrite to replace it (or choose another --out)")
            clear_run(d)
            if log is not None:
                log(f"note: --overwrite removed the earlier run in {d}")
    except BaseException:
        _leave(d, created)
        raise
    return created


def _leave(d: Path, created: bool) -> None:
    release_lock(d)
    if created and not any(d.iterdir()):
        d.rmdir()  # a run that failed at once leaves no empty folder behind
