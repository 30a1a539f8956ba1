"""TrainConfig and the helpers that turn any config dataclass into flags, JSON and back."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["TrainConfig", "config_from_dict", "config_to_dict", "add_config_flags",
           "resolve_config", "load_config_file", "save_config", "option", "start_run"]

C = TypeVar("C")


def option(default: Any, help: str, choices: tuple | None = None, low: float = 0,
           high: float | None = None, below: float | None = None) -> Any:
    """A config field with its `--flag` help text and, optionally, the allowed values.

    Numeric fields (int, float) are checked by every config's `__post_init__`: finite,
    `>= low` (default 0: no config takes a negative number), `<= high`, `< below`.
    """
    return field(default=default, metadata={"help": help, "choices": choices, "low": low,
                                            "high": high, "below": below})


@dataclass
class TrainConfig:
    """How the Trainer optimises; application configs inherit these fields."""

    optimizer: str = option("adamw", "optimiser", ("adam", "adamw", "rmsprop", "sgd"))
    lr: float = option(2e-3, "peak learning rate")
    weight_decay: float = option(0.0, "weight decay (decoupled for adamw)")
    momentum: float = option(0.9, "momentum for sgd and rmsprop")
    beta1: float = option(0.9, "Adam beta1", below=1.0)
    beta2: float = option(0.99, "Adam beta2", below=1.0)
    schedule: str = option("cosine", "learning-rate schedule after warm-up; it runs over "
                         "max_steps, or over the time budget when one is set",
                         ("cosine", "linear", "constant"))
    warmup_steps: int = option(0, "steps of linear warm-up from 0 to lr")
    min_lr_ratio: float = option(0.1, "final learning rate as a fraction of lr", high=1.0)
    clip_norm: float = option(1.0, "clip the global gradient norm to this (0: off)")
    clip_value: float = option(0.0, "clip each gradient element to [-v, v] (0: off)")
    max_steps: int = option(1000, "stop after this many optimiser steps (0: no step limit)")
    max_epochs: int = option(0, "stop after this many passes over the data (0: no limit)")
    time_budget: float = option(0.0, "stop after this many minutes of training (0: no limit)")
    eval_every: int = option(200, "evaluate and checkpoint every N steps", low=1)
    patience: int = option(0, "early stopping: stop after N evaluations without a better "
                         "validation loss (0: off)")
    carry_state: bool = option(True, "truncated BPTT: carry the (detached) recurrent state from "
                             "one batch to the next")
    teacher_forcing: float = option(1.0, "probability of feeding the ground truth rather than the "
                                  "model's own prediction during training", high=1.0)
    seed: int = option(1234, "random seed")
    threads: int = option(0, "torch intra-op threads (0: torch's default)")
    backend: str = option("auto", "recurrent layers: rnnkit's (the fused CPU engine), torch.nn's, "
                        "or auto (rnnkit's where installed)", ("auto", "rnnkit", "torch"))
    progress: bool = option(True, "show a progress bar")
    max_bad_steps: int = option(5, "a step whose loss or gradient norm is not finite is "
                              "skipped (no update); stop after this many in a row", low=1)
    resume: bool = option(False, "continue the run in OUT from its newest checkpoint (refused "
                        "when task, data, vocabulary or model differ)")
    overwrite: bool = option(False, "replace the run already in OUT (its files are removed "
                           "first); without it, or --resume, an existing run is refused")

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_numbers(self)
        if not (self.max_steps or self.max_epochs or self.time_budget):
            raise ValueError("no stopping rule: set max_steps, max_epochs or time_budget")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: --resume continues the "
                             "run in --out, --overwrite replaces it")


def _check_choices(cfg: Any) -> None:
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            raise ValueError(f"{f.name} must be one of {list(choices)}, "
                             f"got {getattr(cfg, f.name)!r}")


def _check_numbers(cfg: Any) -> None:
    """Every int / float field: finite and within the bounds its `option` declares."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        low, high, below = (f.metadata.get(k) for k in ("low", "high", "below"))
        if not math.isfinite(v):
            raise ValueError(f"{f.name} must be a finite number, got {v}")
        if low is not None and v < low:
            raise ValueError(f"{f.name} must be >= {low}, got {v}")
        if high is not None and v > high:
            raise ValueError(f"{f.name} must be <= {high}, got {v}")
        if below is not None and v >= below:
            raise ValueError(f"{f.name} must be < {below}, got {v}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> tuple[type, bool]:
    """(scalar type, optional) for `int`, `str | None`, ..."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _coerce(cls: type, name: str, value: Any, tp: Any) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"config key {name!r} of {cls.__name__} may not be null")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is bool and not isinstance(value, bool):
        raise ValueError(f"config key {name!r} must be true or false, got {value!r}")
    if base in (int, str) and (not isinstance(value, base) or isinstance(value, bool)):
        raise ValueError(f"config key {name!r} must be {base.__name__}, got {value!r}")
    return value


def config_from_dict(cls: type[C], values: dict[str, Any], base: C | None = None) -> C:
    """Build `cls` from `values` over `base` (or the defaults); unknown keys are errors."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for {cls.__name__}; "
                         f"known keys: {sorted(names)}")
    types_ = _field_types(cls)
    merged = config_to_dict(base) if base is not None else {}
    merged.update({k: _coerce(cls, k, v, types_[k]) for k, v in values.items()})
    return cls(**merged)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON config file into a dict (a checkpoint's config.json works: its 'run_config')."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"config {str(p)!r} is a directory; expected a JSON file "
                                f"(a run's config.json works)")
    if not p.exists():
        raise FileNotFoundError(f"config file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config file {str(p)!r} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a JSON object")
    if "run_config" in data and isinstance(data["run_config"], dict):
        data = data["run_config"]
    return data


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the config as JSON to a temporary file, then rename it into place."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, p)


@contextlib.contextmanager
def start_run(cfg: Any, log: Callable[[str], None] | None = print) -> Iterator[Path]:
    """What every application does first, as a `with` block holding the run directory:
    threads and seed from the config; the run directory `cfg.out` created and locked, an
    earlier run there refused unless `cfg.resume` or `cfg.overwrite`
    (`rnnkit.train.run_dir.open_run`); the resolved config printed and saved as config.json."""
    import torch

    from rnnkit.train.run_dir import open_run, run_progress

    with open_run(cfg.out, cfg.resume, cfg.overwrite, log) as out:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if log is not None:
            log("config: " + json.dumps(config_to_dict(cfg), sort_keys=True))
        path = out / "config.json"
        before = path.read_bytes() if path.is_file() else None
        progress = run_progress(out)
        save_config(cfg, path)
        try:
            yield out
        except BaseException:
            # A run that failed before it wrote anything (bad data, a refused resume) leaves
            # the directory as it found it: no config.json describing a run that never was.
            if run_progress(out) == progress:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
                    tmp.write_bytes(before)
                    os.replace(tmp, path)
            raise


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--field-name` flag per field of the dataclass `cls`; unset flags stay absent."""
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        base, optional = _base_type(types_[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_ = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_)
        else:
            parser.add_argument(flag, dest=f.name, type=base, default=argparse.SUPPRESS,
                                choices=f.metadata.get("choices"), help=help_,
                                metavar=None if f.metadata.get("choices") else f.name.upper())


def resolve_config(cls: type[C], args: argparse.Namespace,
                   presets: dict[str, dict[str, Any]] | None = None) -> C:
    """Defaults, then `--preset`, then `--config FILE`, then individual flags, in that order."""
    cfg = cls()
    preset = getattr(args, "preset", None)
    if preset:
        if not presets or preset not in presets:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(presets or {})}")
        cfg = config_from_dict(cls, presets[preset], cfg)
    if getattr(args, "config", None):
        cfg = config_from_dict(cls, load_config_file(args.config), cfg)
    names = {f.name for f in dataclasses.fields(cls)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    return config_from_dict(cls, flags, cfg)
