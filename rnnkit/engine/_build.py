"""Builds (once, cached per user) and loads the engine's one C++ extension: the layer kernels,
the direction kernels and their bindings (csrc/*.cpp), compiled by `torch.utils.cpp_extension`
into `$RNNKIT_CACHE` (default `~/.cache/rnnkit`), keyed on a hash of its sources, flags, torch
and Python; a failed build leaves the reference path and one warning."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

try:
    import fcntl
except ImportError:  # not POSIX: torch's own lock file only
    fcntl = None  # type: ignore[assignment]

__all__ = ["Extension", "ENGINE", "load_extension", "build_error", "cache_dir", "cache_root"]

_CSRC = Path(__file__).resolve().parent / "csrc"
# Portable flags: no -march=native, so a cached build runs on any x86-64 machine (the row loops
# are compiled per instruction set inside the sources and picked at run time). The loops carry
# `#pragma omp simd`; -fopenmp also lets ATen's `parallel_for` (inline, OpenMP) split a step's
# elementwise pass over torch's threads, on the OpenMP runtime torch has already loaded.
_CFLAGS = ("-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-DNDEBUG")
_LDFLAGS = ("-fopenmp",)
# RNNKIT_SANITIZE=address builds the extensions with AddressSanitizer, for bench/asan.sh (the
# process then needs libasan preloaded). The flags are part of the cache key, and the build goes
# to a folder of its own, so sanitized and normal builds never mix.
_SANITIZERS = {"address": ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")}


# RNNKIT_ISA caps the instruction set the kernels pick (csrc/isa.h), for tests.
_ISAS = ("avx512", "avx2", "base")


def _check_isa() -> None:
    name = os.environ.get("RNNKIT_ISA", "")
    if name and name not in _ISAS:
        raise ValueError(f"RNNKIT_ISA must be one of {list(_ISAS)} or empty, got {name!r}")


def _sanitizer() -> str:
    name = os.environ.get("RNNKIT_SANITIZE", "")
    if name and name not in _SANITIZERS:
        raise ValueError(f"RNNKIT_SANITIZE must be one of {sorted(_SANITIZERS)} or empty, "
                         f"got {name!r}")
    return name


def _flags() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The compile and link flags: the portable ones, plus the sanitizer's if one is asked."""
    extra = _SANITIZERS.get(_sanitizer(), ())
    return _CFLAGS + extra, _LDFLAGS + extra


def cache_root() -> Path:
    """$RNNKIT_CACHE, else $XDG_CACHE_HOME/rnnkit, else ~/.cache/rnnkit."""
    root = os.environ.get("RNNKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rnnkit")
    return Path(root)


class Extension:
    """One C++ extension: built on first `load()`, then the same module for the process."""

    def __init__(self, kind: str, what: str, sources: tuple[Path, ...],
                 headers: tuple[Path, ...]) -> None:
        self.kind, self.what = kind, what  # cache subfolder; words for messages
        self.sources, self.headers = sources, headers
        self.module: ModuleType | None = None
        self.defaults: dict[str, int] | None = None  # the compiled tuning (tuning.install)
        self.error: str | None = None

    def source_hash(self) -> str:
        h = hashlib.sha256()
        for path in self.sources + self.headers:
            name = path.relative_to(_CSRC) if path.is_relative_to(_CSRC) else path.name
            h.update(str(name).encode())
            h.update(path.read_bytes())
        cflags, ldflags = _flags()
        h.update(" ".join(cflags + ldflags).encode())
        h.update(torch.__version__.encode())
        h.update(sys.version.encode())
        # The build records absolute paths (sources, torch headers): two checkouts or two venvs
        # sharing one cache must not rebuild over each other.
        h.update(str(_CSRC).encode())
        h.update(str(Path(torch.__file__).parent).encode())
        return h.hexdigest()[:16]

    def cache_dir(self) -> Path:
        tag = f"torch{torch.__version__.replace('+', '_')}-{self.source_hash()}"
        sanitizer = _sanitizer()
        return cache_root() / self.kind / (f"{tag}-{sanitizer}" if sanitizer else tag)

    def load(self, verbose: bool = False, quiet: bool = False) -> ModuleType | None:
        """The compiled module, building it on first use; None (one warning) if it cannot."""
        if self.module is not None:
            return self.module
        if self.error is not None:
            return None
        build_dir = self.cache_dir()
        name = f"rnnkit_{self.kind}_{self.source_hash()}"
        fresh = not any(build_dir.glob(f"{name}*.so"))
        start = time.perf_counter()
        if fresh and not quiet:
            print(f"rnnkit: building the {self.what} into {build_dir} (once)", file=sys.stderr)
        try:
            from torch.utils import cpp_extension

            build_dir.mkdir(parents=True, exist_ok=True)
            cflags, ldflags = _flags()
            with _build_lock(build_dir), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.module = cpp_extension.load(
                    name=name, sources=[str(p) for p in self.sources],
                    extra_cflags=list(cflags), extra_ldflags=list(ldflags),
                    extra_include_paths=[str(_CSRC)], build_directory=str(build_dir),
                    verbose=verbose)
        except Exception as exc:  # no compiler, no ninja, or a failed build: reference path
            self.error = f"the {self.what} could not be built ({type(exc).__name__}: {exc})"
            warnings.warn(f"rnnkit: {self.error.strip()}; using the reference path",
                          RuntimeWarning, stacklevel=3)
            return None
        if fresh and verbose:
            print(f"rnnkit: built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return self.module


@contextlib.contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on the build folder while building or loading it.

    torch's own build lock is a plain file (`lock`) that a build killed midway leaves behind, and
    every later build then waits on it forever. The kernel releases a flock when its process
    dies, so whoever holds this one knows no other build runs here: a `lock` file it finds is
    stale and is removed."""
    if fcntl is None:
        yield
        return
    with open(build_dir / "rnnkit.flock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (build_dir / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


ENGINE = Extension("engine", "fused CPU engine",
                   tuple(sorted(_CSRC.glob("*.cpp"))), tuple(sorted(_CSRC.rglob("*.h"))))


def load_extension(verbose: bool = False, quiet: bool = False) -> ModuleType | None:
    """The compiled fused engine, building it on first use; None (one warning) if it cannot.
    Raises ValueError for an RNNKIT_ISA or RNNKIT_SANITIZE it does not know."""
    _check_isa()
    first = ENGINE.module is None
    module = ENGINE.load(verbose, quiet)
    if module is not None and first:  # the machine's tuning, once (tuning.py)
        from rnnkit.engine import tuning

        tuning.install(module)
    return module


def build_error() -> str | None:
    """Why the fused engine is unavailable (after a failed `load_extension`), else None."""
    return ENGINE.error


def cache_dir() -> Path:
    """The engine's build directory."""
    return ENGINE.cache_dir()
