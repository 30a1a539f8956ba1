"""The engine's tuning: the thresholds that choose each kernel's schedule (csrc/tuning.h), in
one place, read and overridden through one API.

- `current()`: the thresholds in force, a dict name -> int;
- `overridden(**values)`: a context manager that sets some and restores them all on exit;
- `machine()`: what the defaults are derived from (cores, vendor, model, instruction set,
  caches); `defaults()`: the compiled defaults adjusted for it;
- `saved_path()`: where `rnnkit tune` stores what it measured for this machine, applied when
  the engine loads (like FFTW's wisdom), so every later process runs with it.

Example:
    >>> from rnnkit.engine import tuning
    >>> with tuning.overridden(team_batch=0):  # no thread teams inside this block
    ...     tuning.current()["team_batch"]
    0
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["current", "overridden", "machine", "machine_key", "defaults", "saved_path",
           "load_saved", "save", "source", "apply_saved"]

# Where the thresholds in force came from: "built-in" or the path of a saved tuning.
_source = "built-in"


def _ext() -> ModuleType:
    from rnnkit.engine._build import build_error, load_extension

    ext = load_extension()
    if ext is None:
        raise RuntimeError(f"fused engine unavailable: {build_error()}")
    return ext


def current() -> dict[str, int]:
    """The thresholds in force, name -> value (see csrc/tuning.h for what each one chooses)."""
    return dict(_ext().tuning())


@contextlib.contextmanager
def overridden(**values: int) -> Iterator[dict[str, int]]:
    """Set the named thresholds inside a `with` block; all of them are restored on exit.

    Raises ValueError for an unknown name or a negative value (naming it), changing nothing.
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"tuning: {name} must be an int, got {value!r}")
    ext = _ext()
    old = ext.set_tuning(values)
    try:
        yield dict(ext.tuning())
    finally:
        ext.set_tuning(dict(old))


def _cpuinfo(field: str) -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _caches() -> dict[str, int]:
    """Cache sizes in bytes per level and type (L1d, L2, L3), from sysfs where Linux has it."""
    out: dict[str, int] = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
        out[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size.rstrip("KM")) * scale
    return out


def machine() -> dict[str, Any]:
    """What the tuning depends on: cores the process may use, CPU vendor and model, the
    instruction set the kernels picked, and the cache sizes."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {"cores": cores, "vendor": _cpuinfo("vendor_id") or platform.machine(),
            "model": _cpuinfo("model name") or platform.processor(), "isa": _ext().isa(),
            "caches": _caches()}


def machine_key() -> str:
    """A short name for this machine's kind (vendor, model, cores, instruction set)."""
    m = machine()
    text = json.dumps([m["vendor"], m["model"], m["cores"], m["isa"]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def defaults() -> dict[str, int]:
    """The compiled defaults, adjusted for this machine: a step loop splits by batch rows only
    while the recurrent weights fit in one core's L2 (every thread of the split reads all of
    them at every step); one-step calls use oneDNN's step product only with AVX-512 (where
    MKL on a non-Intel CPU runs AVX2 kernels); small calls' weight gradients go to the packed
    step kernel except on Intel CPUs (where MKL runs its AVX-512 kernels); with one core there
    is no thread to share a step loop with, so no teams, row splits or pipelined backward.
    (The defaults were measured on 2-core Intel Xeon and AMD EPYC machines; `rnnkit tune`
    measures this one.)"""
    from rnnkit.engine._build import ENGINE

    _ext()  # loading the engine records the compiled defaults (install)
    values = dict(ENGINE.defaults) if ENGINE.defaults else current()
    info = machine()
    l2 = info["caches"].get("L2", 0)
    if l2 and "split_weight_bytes" in values:  # a row split's threads each read all of W_hh
        values["split_weight_bytes"] = l2
    if info["isa"] != "avx512" and "few_step_onednn_macs" in values:
        values["few_step_onednn_macs"] = 0  # oneDNN's lead over MKL needs its AVX-512 kernels
    if "intel" in str(info["vendor"]).lower() and "own_grad_macs" in values:
        values["own_grad_macs"] = 0  # MKL runs its AVX-512 kernels on Intel CPUs only
    if info["cores"] < 2:
        values.update(team_batch=0, direction_team_batch=0, split_rows=0, pipeline_rows=0)
    return values


def saved_path() -> Path:
    """Where `rnnkit tune` stores this machine's thresholds: the engine's cache directory."""
    from rnnkit.engine._build import cache_root

    return cache_root() / "tuning" / f"{machine_key()}.json"


def load_saved(path: Path | None = None) -> dict[str, int] | None:
    """The thresholds saved for this machine, or None. A file that is not a JSON object of
    known names to non-negative ints is reported (one warning) and ignored."""
    path = saved_path() if path is None else path
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        values = data["thresholds"]
        known = set(current())
        if not isinstance(values, dict) or not all(
                k in known and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for k, v in values.items()):
            raise ValueError("thresholds must map known names to non-negative ints")
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"rnnkit: ignoring the saved tuning {path}: {err}", RuntimeWarning,
                      stacklevel=2)
        return None
    return values


def save(values: dict[str, int], measurements: list[dict[str, Any]],
         path: Path | None = None) -> Path:
    """Store `values` (and the measurements behind them) for this machine, atomically."""
    path = saved_path() if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"machine": machine(), "thresholds": values,
                               "measurements": measurements}, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def source() -> str:
    """Where the thresholds in force came from: "built-in", or the saved file applied."""
    return _source


def apply_saved() -> None:
    """Put this process on the defaults plus this machine's saved tuning, if there is one."""
    global _source
    _ext().set_tuning(defaults())
    saved = load_saved()
    if saved:
        _ext().set_tuning(saved)
    _source = str(saved_path()) if saved else "built-in"


def install(ext: ModuleType) -> None:
    """Called once when the engine loads: remember the compiled defaults, then apply this
    machine's adjustments and its saved tuning (`apply_saved`)."""
    from rnnkit.engine._build import ENGINE

    ENGINE.defaults = dict(ext.tuning())
    apply_saved()
