"""Export: torch.nn twins compute the same function; ONNX files run in onnxruntime."""

from __future__ import annotations

import pytest
import torch
from parity import KINDS
from torch import nn

import rnnkit as rk
from rnnkit.export import export_onnx, to_torch_nn, torch_twin


class _Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 3)
        self.rnn = rk.GRU(3, 5, num_layers=2, bidirectional=True)
        self.head = nn.Linear(10, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(tokens))[0])


@pytest.mark.parametrize("kind", KINDS)
def test_torch_twin_computes_the_same_function(kind):
    rk_cls, nn_cls, extra = KINDS[kind]
    layer = rk_cls(3, 5, num_layers=2, bidirectional=True, batch_first=True, **extra)
    twin = torch_twin(layer)
    assert type(twin) is nn_cls and twin.batch_first
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(twin(x)[0], layer(x)[0], rtol=1e-5, atol=1e-6)


def test_to_torch_nn_replaces_nested_layers_and_leaves_the_original():
    model = _Tagger()
    converted = to_torch_nn(model)
    assert isinstance(converted.rnn, nn.GRU) and isinstance(model.rnn, rk.GRU)
    tokens = torch.randint(0, 10, (6, 2))
    torch.testing.assert_close(converted(tokens), model(tokens), rtol=1e-5, atol=1e-6)


def test_variants_do_not_convert():
    with pytest.raises(ValueError, match="no torch.nn equivalent"):
        torch_twin(rk.LayerNormLSTM(3, 5))
    with pytest.raises(ValueError, match="zoneout"):
        torch_twin(rk.LSTM(3, 5, zoneout=0.1))


def test_onnx_model_runs_in_onnxruntime_at_other_lengths(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    lstm = rk.LSTM(3, 5, num_layers=2, bidirectional=True).eval()
    path = export_onnx(lstm, (torch.randn(7, 2, 3),), tmp_path / "lstm.onnx",
                       input_names=["x"], output_names=["y", "h", "c"],
                       dynamic_axes={"x": {0: "T", 1: "B"}, "y": {0: "T", 1: "B"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(11, 4, 3)
    y, h, c = session.run(None, {"x": x.numpy()})
    out, (h_ref, c_ref) = lstm(x)
    for got, want in ((y, out), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(torch.from_numpy(got), want.detach(), rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_onnx_export_of_a_model_with_layers_inside(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = _Tagger().eval()
    path = export_onnx(model, (torch.randint(0, 10, (5, 2)),), tmp_path / "tagger.onnx",
                       input_names=["tokens"], dynamic_axes={"tokens": {0: "T", 1: "B"}})
    tokens = torch.randint(0, 10, (8, 3))
    (logits,) = ort.InferenceSession(str(path)).run(None, {"tokens": tokens.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), model(tokens).detach(), rtol=1e-4,
                               atol=1e-5)
