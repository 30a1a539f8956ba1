"""Checkpoint directories: model.safetensors, config.json, trainer.safetensors + trainer.json,
and manifest.json (sha256 of each, written last); atomic saves and verified loads."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from rnnkit.train.integrity import (
    MANIFEST_FILE,
    CheckpointError,
    read_json,
    verify_checkpoint,
    write_manifest,
)
from rnnkit.train.run_dir import ResumeMismatchError, resume_mismatches

__all__ = ["save_checkpoint", "load_checkpoint_meta", "load_model_weights", "load_trainer_state",
           "find_checkpoint", "checkpoint_step", "state_to_flat", "state_from_flat", "rng_state",
           "set_rng_state", "read_for_resume"]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_TENSORS = "trainer.safetensors"
TRAINER_FILE = "trainer.json"
# Where find_checkpoint looks inside a run directory, by preference.
_NAMES = {"best": ("best", "best.old", "last", "last.old"),
          "last": ("last", "last.old", "best", "best.old")}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _discard(folder: Path) -> None:
    """Remove a folder by first renaming it to a hidden trash name, so a kill mid-delete never
    leaves a half-deleted checkpoint under a name that is loaded (the trash of a dead process
    is cleaned by rnnkit.train.run_dir)."""
    trash = folder.with_name(f".{folder.name}.trash-{os.getpid()}")
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(folder, trash)
    shutil.rmtree(trash)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: dict[str, Any],
                    trainer_tensors: dict[str, Tensor] | None = None,
                    trainer_meta: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically, with a manifest of checksums written last.

    Everything goes to a temporary sibling directory `.NAME.tmp-PID` first; the finished
    directory then replaces `path` by renames, so a crash leaves either the old or the new
    checkpoint whole (if it strikes between the two renames, the old one is at `path` + ".old"
    and `find_checkpoint` picks it up).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    old = final.with_name(final.name + ".old")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / MODEL_FILE))
    _write_json(tmp / CONFIG_FILE, config)
    if trainer_meta is not None:
        save_file(trainer_tensors or {}, str(tmp / TRAINER_TENSORS))
        _write_json(tmp / TRAINER_FILE, trainer_meta)
    write_manifest(tmp)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if old.exists():
        _discard(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        _discard(old)
    return final


def _holds_checkpoint(p: Path) -> bool:
    return (p / CONFIG_FILE).is_file() and (p / MODEL_FILE).is_file()


def checkpoint_step(where: Path) -> int:
    """The optimiser step a checkpoint was saved at (from trainer.json, else config.json)."""
    for name in (TRAINER_FILE, CONFIG_FILE):
        if (where / name).is_file():
            data = read_json(where / name)
            if isinstance(data, dict) and isinstance(data.get("step"), int):
                return data["step"]
    return -1


def _verify(where: Path) -> None:
    """The manifest check, and the two files every checkpoint needs."""
    verify_checkpoint(where, (MODEL_FILE, CONFIG_FILE))
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (where / name).is_file():
            raise CheckpointError(f"checkpoint file {str(where / name)!r} is missing")


def find_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """The checkpoint directory for `path`, verified against its manifest.

    `path` itself if it holds a checkpoint. Otherwise, inside a run directory: with
    `prefer="best"` the first of best, best.old, last, last.old; with `prefer="last"` (resume)
    the one saved at the highest step among last, last.old, best, best.old (ties in that
    order), every one of them verified.

    Raises:
        FileNotFoundError: no checkpoint there.
        CheckpointError: a checkpoint considered is truncated, altered or unreadable.
    """
    if prefer not in _NAMES:
        raise ValueError(f"prefer must be 'best' or 'last', got {prefer!r}")
    p = Path(path)
    if p.is_file():
        raise NotADirectoryError(f"checkpoint path {str(p)!r} is a file; expected a run "
                                 f"directory or a checkpoint directory")
    if _holds_checkpoint(p) or (p / MANIFEST_FILE).is_file():
        _verify(p)
        return p
    # Saves rename complete folders into place, so a best/ or last/ that lacks a file was
    # damaged afterwards: refused (verified below), never skipped for another checkpoint.
    found = [p / n for n in _NAMES[prefer] if (p / n).is_dir()]
    if not found:
        raise FileNotFoundError(f"no checkpoint in {str(p)!r} (expected {MODEL_FILE} and "
                                f"{CONFIG_FILE} there or in its 'best' / 'last' sub-directory)")
    if prefer == "best":
        _verify(found[0])
        return found[0]
    for where in found:
        _verify(where)
    steps = [checkpoint_step(w) for w in found]
    return found[steps.index(max(steps))]


def load_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's config.json (model class, arguments, vocabulary, run config)."""
    meta = read_json(Path(path) / CONFIG_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_args"), dict):
        raise CheckpointError(f"checkpoint file {str(Path(path) / CONFIG_FILE)!r} has no "
                              f"'model_args' object")
    return meta


def load_model_weights(path: str | os.PathLike, model: nn.Module) -> None:
    f = Path(path) / MODEL_FILE
    try:
        missing, unexpected = load_model(model, str(f), strict=False)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint file {str(f)!r} cannot be read: "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                              ) from err
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match the model: missing "
                              f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


def load_trainer_state(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    p = Path(path)
    if not (p / TRAINER_FILE).exists():
        raise FileNotFoundError(f"checkpoint {str(p)!r} has no trainer state ({TRAINER_FILE})")
    meta = read_json(p / TRAINER_FILE)
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint file {str(p / TRAINER_FILE)!r} is not an object")
    try:
        tensors = load_file(str(p / TRAINER_TENSORS))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint file {str(p / TRAINER_TENSORS)!r} cannot be read: "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                              ) from err
    return tensors, meta


def read_for_resume(path: str | os.PathLike | None, run_dir: str | os.PathLike,
                    model: nn.Module, current: dict[str, Any]
                    ) -> tuple[Path, dict[str, Tensor], dict[str, Tensor], dict[str, Any]] | None:
    """What a Trainer resumes from: the newest checkpoint in `path` (default: `run_dir`, where
    finding none returns None), checked against the run's `current` config.json contents; its
    weights are loaded into `model`. Returns (where, the model's state dict, trainer tensors,
    trainer meta).

    Raises:
        ResumeMismatchError: task, data fingerprint, vocabulary or model arguments differ.
        CheckpointError: the checkpoint fails its checks.
    """
    try:
        where = find_checkpoint(path or run_dir, prefer="last")
    except FileNotFoundError:
        if path is not None:
            raise
        return None
    diffs = resume_mismatches(load_checkpoint_meta(where), current)
    if diffs:
        raise ResumeMismatchError(
            f"cannot resume from {where}: the saved run differs in " + "; ".join(diffs) +
            "; pass --overwrite to replace it, or choose another --out")
    load_model_weights(where, model)
    tensors, meta = load_trainer_state(where)
    return where, dict(model.state_dict()), tensors, meta


def state_to_flat(state: Any, prefix: str) -> tuple[dict[str, Tensor], Any]:
    """A recurrent state (None, a tensor, or a tuple of them) as named tensors + a JSON layout."""
    if state is None:
        return {}, None
    if isinstance(state, Tensor):
        return {f"{prefix}.0": state.detach().clone().contiguous()}, "tensor"
    return ({f"{prefix}.{i}": s.detach().clone().contiguous() for i, s in enumerate(state)},
            ["tuple", len(state)])


def state_from_flat(tensors: dict[str, Tensor], layout: Any, prefix: str) -> Any:
    if layout is None:
        return None
    if layout == "tensor":
        return tensors[f"{prefix}.0"]
    return tuple(tensors[f"{prefix}.{i}"] for i in range(layout[1]))


def rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    import random
    version, internal, gauss = random.getstate()
    return {"rng.torch": torch.get_rng_state()}, {"python": [version, list(internal), gauss]}


def set_rng_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    import random
    torch.set_rng_state(tensors["rng.torch"])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
