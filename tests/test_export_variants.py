"""ONNX export of the variant layers (ONNX Loop over the cell's own step) and of the standard
ones (ONNX's operators with sequence_lens): onnxruntime equals the layer with lengths=."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit.export import export_model, export_onnx
from rnnkit.layers import stack
from rnnkit.models import SequenceClassifier

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

LAYERS = {
    "layernorm_lstm": lambda: rk.LayerNormLSTM(3, 5, num_layers=2, bidirectional=True),
    "layernorm_gru": lambda: rk.LayerNormGRU(3, 5, num_layers=2, bias=False, batch_first=True),
    "peephole_lstm": lambda: rk.PeepholeLSTM(3, 5, bidirectional=True),
    "leaky_rnn": lambda: rk.LeakyRNN(3, 5, num_layers=2, rate=(0.05, 1.0)),
    "skip_rnn": lambda: rk.SkipRNN(3, 5, delays=(1, 3), bidirectional=True),
    "lstm_projection": lambda: rk.LSTM(3, 5, proj_size=2, num_layers=2, bidirectional=True),
    "gru_zoneout": lambda: rk.GRU(3, 5, zoneout=0.3, batch_first=True),
    "irnn": lambda: rk.IRNN(3, 5, num_layers=2, bidirectional=True),
    "lstm": lambda: rk.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True),
}
LOOPED = {"layernorm_lstm", "layernorm_gru", "peephole_lstm", "leaky_rnn", "skip_rnn",
          "lstm_projection", "gru_zoneout"}


class WithLengths(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        return self.layer(x, lengths=lengths)


def _no_engine(*args, **kwargs):
    raise AssertionError("export called the fused engine")


@pytest.mark.parametrize("name", LAYERS)
def test_layer_with_lengths_in_onnxruntime(tmp_path, monkeypatch, name):
    torch.manual_seed(0)
    layer = LAYERS[name]()
    layer.engine = "reference"
    layer.eval()
    n_fields = len(layer.cell_cls.State._fields)
    bf = layer.batch_first
    axes = {0: "B", 1: "T"} if bf else {0: "T", 1: "B"}
    monkeypatch.setattr(stack, "run_fused", _no_engine)
    x = torch.randn(3, 5, 3) if bf else torch.randn(5, 3, 3)
    outputs = ["y", "h", "c"][:1 + n_fields]
    path = export_onnx(WithLengths(layer), (x, torch.tensor([5, 2, 4])), tmp_path / "l.onnx",
                       input_names=["x", "lengths"], output_names=outputs,
                       dynamic_axes={"x": axes, "lengths": {0: "B"}, "y": axes,
                                     **{n: {1: "B"} for n in outputs[1:]}})
    monkeypatch.undo()
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("Loop" in ops) == (name in LOOPED)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for T, B in [(8, 2), (2, 6)]:
        lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(T))
        lengths[-1] = T
        x = torch.randn(B, T, 3) if bf else torch.randn(T, B, 3)
        got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
        out, state = layer(x, lengths=lengths)
        state = state if n_fields > 1 else (state,)
        for g, w in zip(got, (out, *state), strict=True):
            np.testing.assert_allclose(g, w.detach().numpy(), rtol=0, atol=1e-5)


def test_model_holding_a_variant(tmp_path):
    torch.manual_seed(1)
    model = SequenceClassifier(4, vocab_size=9, input_size=3, hidden_size=5).eval()
    model.rnn = rk.LayerNormLSTM(3, 5, engine="reference").eval()
    (g,) = export_model(model, tmp_path / "clf.onnx")
    session = ort.InferenceSession(str(g.path), providers=["CPUExecutionProvider"])
    tokens, lengths = torch.randint(0, 9, (7, 4)), torch.tensor([3, 7, 1, 5])
    (logits,) = session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
    np.testing.assert_allclose(logits, model(tokens, lengths).detach().numpy(), rtol=0,
                               atol=1e-5)


@pytest.mark.parametrize("sweep", ["renet", "parallel"])
def test_four_direction_grid_with_dynamic_sizes(tmp_path, sweep):
    torch.manual_seed(2)
    grid = rk.FourDirectionRNN(2, 4, sweep=sweep, engine="reference").eval()
    axes = {0: "B", 2: "R", 3: "C"}
    path = export_onnx(grid, (torch.randn(2, 2, 3, 4),), tmp_path / "grid.onnx",
                       input_names=["x"], output_names=["y"],
                       dynamic_axes={"x": axes, "y": axes})
    x = torch.randn(3, 2, 5, 6)
    (y,) = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(y, grid(x).detach().numpy(), rtol=0, atol=1e-5)
