"""Builds (once, cached per user) and loads the fused engine's C++ extension."""

from __future__ import annotations

import hashlib
import os
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["load_extension", "build_error", "cache_dir", "SOURCES"]

_CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (_CSRC / "fused_rnn.cpp",)
_HEADERS = (_CSRC / "fused_rnn_rows.h",)
# Portable flags: no -march=native, so a cached build runs on any x86-64 machine. The gate
# loops carry `#pragma omp simd`; -fopenmp lets ATen's `parallel_for` (inline, OpenMP) split a
# step's elementwise pass over torch's threads, on the OpenMP runtime torch already loaded.
_CFLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-DNDEBUG"]
_LDFLAGS = ["-fopenmp"]

_module: ModuleType | None = None
_error: str | None = None
_warned = False


def _source_hash() -> str:
    h = hashlib.sha256()
    for path in SOURCES + _HEADERS:
        h.update(path.read_bytes())
    h.update(" ".join(_CFLAGS).encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    # The build records absolute paths (sources, torch headers): two checkouts or two venvs
    # sharing one cache must not rebuild over each other.
    h.update(str(_CSRC).encode())
    h.update(str(Path(torch.__file__).parent).encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """The build directory: $RNNKIT_CACHE or ~/.cache/rnnkit, keyed on source hash and torch."""
    root = os.environ.get("RNNKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rnnkit"
    )
    tag = f"torch{torch.__version__.replace('+', '_')}-{_source_hash()}"
    return Path(root) / "engine" / tag


def _extension_name() -> str:
    return f"rnnkit_fused_{_source_hash()}"


def load_extension(verbose: bool = False, quiet: bool = False) -> ModuleType | None:
    """The compiled engine, building it on first use; None (and one warning) if it cannot build."""
    global _module, _error, _warned
    if _module is not None:
        return _module
    if _error is not None:
        return None
    build_dir = cache_dir()
    name = _extension_name()
    fresh = not any(build_dir.glob(f"{name}*.so"))
    start = time.perf_counter()
    if fresh and not quiet:
        print(f"rnnkit: building the fused CPU engine into {build_dir} (once)", file=sys.stderr)
    try:
        from torch.utils import cpp_extension

        build_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _module = cpp_extension.load(
                name=name,
                sources=[str(p) for p in SOURCES],
                extra_cflags=_CFLAGS,
                extra_ldflags=_LDFLAGS,
                extra_include_paths=[str(_CSRC)],
                build_directory=str(build_dir),
                verbose=verbose,
            )
    except Exception as exc:  # no compiler, no ninja, or a failed build: use the reference path
        _error = f"the fused engine could not be built ({type(exc).__name__}: {exc})".strip()
        if not _warned:
            _warned = True
            warnings.warn(f"rnnkit: {_error}; using the reference path", RuntimeWarning,
                          stacklevel=2)
        return None
    if fresh and verbose:
        print(f"rnnkit: built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return _module


def build_error() -> str | None:
    """Why the extension is unavailable (after a failed `load_extension`), else None."""
    return _error
