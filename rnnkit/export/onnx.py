"""export_onnx: write a model with rnnkit layers as an ONNX file (atomically)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.export.torch_nn import to_torch_nn

__all__ = ["export_onnx"]


class _Flat(nn.Module):
    """Calls the model and flattens nested tuples of outputs (e.g. LSTM states) for ONNX."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        return tuple(_flatten(self.model(*args)))


def _flatten(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    return [t for v in value for t in _flatten(v)]


def export_onnx(model: nn.Module, example_inputs: Sequence[Tensor], path: str | os.PathLike,
                input_names: Sequence[str] | None = None,
                output_names: Sequence[str] | None = None,
                dynamic_axes: dict[str, dict[int, str]] | None = None,
                opset: int = 17) -> Path:
    """Export `model` (an rnnkit layer or a module containing them) to ONNX.

    rnnkit's standard layers are converted to torch.nn twins first (`to_torch_nn`), so the
    file holds ONNX's LSTM/GRU/RNN operators and accepts any sequence length and batch size
    named in `dynamic_axes`. Outputs are flattened: an LSTM gives (output, h_n, c_n).
    The file is written to a temporary name and renamed.

    Example:
        >>> import tempfile, torch, rnnkit as rk
        >>> lstm = rk.LSTM(3, 5, num_layers=2).eval()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = export_onnx(lstm, (torch.randn(7, 2, 3),), f"{d}/lstm.onnx",
        ...                     input_names=["x"], dynamic_axes={"x": {0: "T", 1: "B"}})
        ...     p.stat().st_size > 0
        True
    """
    path = Path(path)
    flat = _Flat(to_torch_nn(model)).eval()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # the TorchScript-based exporter is the one that maps torch.nn's recurrent layers
            # to ONNX's own operators; torch flags it as legacy
            warnings.simplefilter("ignore")
            torch.onnx.export(flat, tuple(example_inputs), str(tmp), dynamo=False,
                              input_names=list(input_names) if input_names else None,
                              output_names=list(output_names) if output_names else None,
                              dynamic_axes=dynamic_axes, opset_version=opset)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
