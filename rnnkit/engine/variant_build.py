"""The variant kernels' C++ extension: built and cached like the fused engine (`_build.py`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from rnnkit.engine._build import VARIANTS

__all__ = ["load_variants", "variants_build_error", "variants_cache_dir"]


def load_variants(verbose: bool = False, quiet: bool = False) -> ModuleType | None:
    """The compiled variant kernels, built on first use; None (one warning) if they cannot be."""
    return VARIANTS.load(verbose, quiet)


def variants_build_error() -> str | None:
    """Why the extension is unavailable (after a failed `load_variants`), else None."""
    return VARIANTS.error


def variants_cache_dir() -> Path:
    """Beside the fused engine's cache (same root, $RNNKIT_CACHE or ~/.cache/rnnkit)."""
    return VARIANTS.cache_dir()
