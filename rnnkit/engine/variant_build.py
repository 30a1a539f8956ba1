"""Builds (once, cached per user) and loads the C++ extension of the variant kernels."""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

from rnnkit.engine import _build

__all__ = ["load_variants", "variants_build_error", "variants_cache_dir", "VARIANT_SOURCES"]

_CSRC = Path(__file__).resolve().parent / "csrc"
VARIANT_SOURCES = (_CSRC / "variants.cpp",)
_HEADERS = tuple(sorted(_CSRC.glob("variants_*.h")))
# Portable flags (no -march=native): the row loops are compiled per instruction set inside the
# source and picked at run time; -fopenmp-simd honours `#pragma omp simd` without OpenMP.
_CFLAGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-DNDEBUG"]

_module: ModuleType | None = None
_error: str | None = None


def _source_hash() -> str:
    h = hashlib.sha256()
    for path in VARIANT_SOURCES + _HEADERS:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(" ".join(_CFLAGS).encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    h.update(str(_CSRC).encode())  # absolute paths are baked into the build
    h.update(str(Path(torch.__file__).parent).encode())
    return h.hexdigest()[:16]


def variants_cache_dir() -> Path:
    """Beside the fused engine's cache (same root, $RNNKIT_CACHE or ~/.cache/rnnkit)."""
    root = _build.cache_dir().parent.parent
    tag = f"torch{torch.__version__.replace('+', '_')}-{_source_hash()}"
    return root / "variants" / tag


def load_variants(verbose: bool = False) -> ModuleType | None:
    """The compiled variant kernels, built on first use; None (one warning) if they cannot be."""
    global _module, _error
    if _module is not None:
        return _module
    if _error is not None:
        return None
    build_dir = variants_cache_dir()
    name = f"rnnkit_variants_{_source_hash()}"
    fresh = not any(build_dir.glob(f"{name}*.so"))
    start = time.perf_counter()
    if fresh:
        print(f"rnnkit: building the fused variant kernels into {build_dir} (once)",
              file=sys.stderr)
    try:
        from torch.utils import cpp_extension

        build_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _module = cpp_extension.load(
                name=name, sources=[str(p) for p in VARIANT_SOURCES], extra_cflags=_CFLAGS,
                extra_include_paths=[str(_CSRC)], build_directory=str(build_dir),
                verbose=verbose)
    except Exception as exc:  # no compiler or a failed build: the reference path runs instead
        _error = f"the fused variant kernels could not be built ({type(exc).__name__}: {exc})"
        warnings.warn(f"rnnkit: {_error}; using the reference path", RuntimeWarning,
                      stacklevel=2)
        return None
    if fresh and verbose:
        print(f"rnnkit: built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return _module


def variants_build_error() -> str | None:
    """Why the extension is unavailable (after a failed `load_variants`), else None."""
    return _error
