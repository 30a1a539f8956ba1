"""The model of a training run (as `rnnkit train ...` and `rnnkit lab ...` save it), for export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from rnnkit.export.models import SUPPORTED
from rnnkit.export.onnx import ExportedGraph, export_model
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.integrity import CheckpointError, read_json

__all__ = ["load_run_model", "export_run", "run_outputs"]


def load_run_model(path: str | os.PathLike, prefer: str = "best") -> nn.Module:
    """The model saved in a run or checkpoint directory, with its weights, in eval mode.

    Raises:
        FileNotFoundError: no checkpoint there.
        CheckpointError (a ValueError): a damaged checkpoint, or a model class unknown here.
    """
    where = ckpt.find_checkpoint(path, prefer)
    meta = read_json(where / ckpt.CONFIG_FILE)
    name = meta.get("model_class") if isinstance(meta, dict) else None
    classes = {c.__name__: c for c in SUPPORTED}
    if name == "LabTaskModel":
        from rnnkit.lab.experiments import LabConfig, _TaskModel
        from rnnkit.train.config import config_from_dict

        run_config: Any = meta.get("run_config")
        if not isinstance(run_config, dict):
            raise CheckpointError(f"checkpoint {str(where)!r} has no 'run_config' object")
        model: nn.Module = _TaskModel(config_from_dict(LabConfig, run_config))
    elif name in classes:
        model = classes[name](**ckpt.load_checkpoint_meta(where)["model_args"])
    else:
        raise CheckpointError(f"checkpoint {str(where)!r} holds a {name!r}; export knows "
                              f"{sorted([*classes, 'LabTaskModel'])}")
    ckpt.load_model_weights(where, model)
    return model.eval()


def run_outputs(model: nn.Module, path: str | os.PathLike) -> list[Path]:
    """The files `export_model(model, path)` writes (Seq2Seq: an encoder and a decoder)."""
    from rnnkit.models import Seq2Seq

    p = Path(path)
    if isinstance(model, Seq2Seq):
        return [p.with_name(f"{p.stem}{s}{p.suffix}") for s in (".encoder", ".decoder")]
    return [p]


def export_run(run: str | os.PathLike, path: str | os.PathLike, prefer: str = "best",
               overwrite: bool = False, opset: int = 17) -> list[ExportedGraph]:
    """Export the model of a training run to ONNX (see `export_model`).

    Raises:
        FileExistsError: a file to be written exists and `overwrite` is False.
    """
    model = load_run_model(run, prefer)
    if not overwrite:
        taken = [str(p) for p in run_outputs(model, path) if p.exists()]
        if taken:
            raise FileExistsError(f"{', '.join(taken)} already exist(s); pass --overwrite "
                                  f"(overwrite=True) to replace")
    return export_model(model, path, opset=opset)
