"""ONNX files from rnnkit models: `export_model` (a task model, with lengths and dynamic axes)
and `export_onnx` (any module, with your own example inputs); both write atomically."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.export.graph_layers import for_export

__all__ = ["export_onnx", "export_model", "ExportedGraph"]

# torch's exporter prints these from C++ for the PackedSequence markers it removes again; they
# say nothing about the exported graph.
_HARMLESS = ("The shape inference of prim::PackPadded", "The shape inference of prim::PadPacked")


@dataclass
class ExportedGraph:
    """A written ONNX file: where, its input and output names in order, what it computes."""

    path: Path
    inputs: list[str]
    outputs: list[str]
    what: str


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
    """Export `model` (an rnnkit layer, or any module containing recurrent layers) to ONNX.

    The model is exported in evaluation mode from a copy (`for_export`): rnnkit's standard
    layers (and torch.nn's) become ONNX's LSTM / GRU / RNN operators, the variants an ONNX Loop
    running their cell's equations; a layer called with `lengths=` keeps its lengths, so a
    `lengths` input of the model becomes an input of the graph. Axes named in `dynamic_axes`
    take any size. Outputs are flattened: an LSTM gives (output, h_n, c_n). For the task
    models, `export_model` chooses the inputs itself.

    Example:
        >>> import tempfile, torch, rnnkit as rk
        >>> lstm = rk.LSTM(3, 5, num_layers=2).eval()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = export_onnx(lstm, (torch.randn(7, 2, 3),), f"{d}/lstm.onnx",
        ...                     input_names=["x"], dynamic_axes={"x": {0: "T", 1: "B"}})
        ...     p.stat().st_size > 0
        True
    """
    return _write(_Flat(for_export(model)), tuple(example_inputs), Path(path),
                  list(input_names) if input_names else None,
                  list(output_names) if output_names else None, dynamic_axes, opset)


def export_model(model: nn.Module, path: str | os.PathLike, opset: int = 17
                 ) -> list[ExportedGraph]:
    """Export a task model (LanguageModel, SequenceClassifier, SequenceTagger, PianoRollModel,
    Forecaster, ConditionalGenerator, Seq2Seq, the lab's task model) to ONNX at `path`.

    Sequences come in padded with their `lengths`, batch and time axes are dynamic, and the
    outputs equal the model's with `lengths=` (docs/export.md lists each model's inputs and
    outputs). A Seq2Seq gives two files beside `path`: `NAME.encoder.onnx` and
    `NAME.decoder.onnx` (one decoder step); the decoding loop stays outside the graphs.

    Raises:
        ValueError: a model or a module inside it that has no ONNX export (named).
    """
    from rnnkit.export.models import graphs

    path = Path(path)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    written = []
    for g in graphs(model):
        if dtype is not None:  # the examples are float32; a float64 model takes float64
            g.inputs = {k: v.to(dtype) if v.is_floating_point() else v
                        for k, v in g.inputs.items()}
        target = path if not g.suffix else path.with_name(f"{path.stem}{g.suffix}{path.suffix}")
        names = [*g.inputs, *g.outputs]
        axes = {k: v for k, v in g.axes.items() if k in names}
        _write(g.module, tuple(g.inputs.values()), target, list(g.inputs), g.outputs, axes,
               opset)
        written.append(ExportedGraph(target, list(g.inputs), list(g.outputs), g.what))
    return written


def _write(module: nn.Module, args: tuple[Tensor, ...], path: Path,
           input_names: list[str] | None, output_names: list[str] | None,
           dynamic_axes: dict[str, dict[int, str]] | None, opset: int) -> Path:
    """torch.onnx.export to a temporary name in `path`'s folder, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings(), _quiet_native_log(), torch.no_grad():
            # the TorchScript-based exporter is the one that maps recurrent layers to ONNX's
            # own operators and scripted loops to ONNX Loop; torch flags it as legacy, and the
            # tracer warns about the Python-level checks of the models
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, str(tmp), dynamo=False,
                              input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=opset)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _quiet_native_log() -> Iterator[None]:
    """Hold back what C++ writes to stderr meanwhile; pass on all but the `_HARMLESS` lines."""
    fd = 2  # where C++ writes, whatever sys.stderr is
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if not any(h in line for h in _HARMLESS)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
