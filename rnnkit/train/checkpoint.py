"""Checkpoint directories: model.safetensors, config.json, trainer.safetensors, trainer.json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

__all__ = ["save_checkpoint", "load_checkpoint_meta", "load_model_weights", "load_trainer_state",
           "find_checkpoint", "state_to_flat", "state_from_flat", "rng_state", "set_rng_state"]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_TENSORS = "trainer.safetensors"
TRAINER_FILE = "trainer.json"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: dict[str, Any],
                    trainer_tensors: dict[str, Tensor] | None = None,
                    trainer_meta: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically.

    Everything goes to a temporary sibling directory first; the finished directory then
    replaces `path` by renames, so a crash leaves either the old or the new checkpoint whole
    (if it strikes between the two renames, the old one is at `path` + ".old" and
    `find_checkpoint` picks it up).
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
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def find_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """The checkpoint directory for `path`: itself if it holds one, else its `prefer` ("best"
    or "last") sub-directory, else the other one."""
    p = Path(path)
    if (p / CONFIG_FILE).exists() and (p / MODEL_FILE).exists():
        return p
    order = [prefer, "last" if prefer == "best" else "best"]
    for name in order + [n + ".old" for n in order]:
        if (p / name / MODEL_FILE).exists() and (p / name / CONFIG_FILE).exists():
            return p / name
    raise FileNotFoundError(f"no checkpoint in {str(p)!r} (expected {MODEL_FILE} and "
                            f"{CONFIG_FILE} there or in its 'best' / 'last' sub-directory)")


def load_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(path) / CONFIG_FILE).read_text(encoding="utf-8"))


def load_model_weights(path: str | os.PathLike, model: nn.Module) -> None:
    missing, unexpected = load_model(model, str(Path(path) / MODEL_FILE), strict=True)
    if missing or unexpected:
        raise ValueError(f"checkpoint {str(path)!r} does not match the model: missing "
                         f"{sorted(missing)}, unexpected {sorted(unexpected)}")


def load_trainer_state(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    p = Path(path)
    if not (p / TRAINER_FILE).exists():
        raise FileNotFoundError(f"checkpoint {str(p)!r} has no trainer state ({TRAINER_FILE})")
    meta = json.loads((p / TRAINER_FILE).read_text(encoding="utf-8"))
    return load_file(str(p / TRAINER_TENSORS)), meta


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
