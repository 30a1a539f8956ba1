"""export_model: every task model in onnxruntime equals the model with lengths=, at batch and
time sizes other than the export example's (5 steps, 3 sequences)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.export import export_model
from rnnkit.layers.base import RecurrentLayer
from rnnkit.models import (
    ConditionalGenerator,
    Forecaster,
    LanguageModel,
    PianoRollModel,
    Seq2Seq,
    SequenceClassifier,
    SequenceTagger,
)

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SIZES = [(8, 2), (3, 6)]  # (T, B): neither is the export example's
ATOL = 1e-5


def reference(model: torch.nn.Module) -> torch.nn.Module:
    """The model on the reference path, in evaluation mode (no engine build in these tests)."""
    for m in model.modules():
        if isinstance(m, RecurrentLayer):
            m.engine = "reference"
    return model.eval()


def run(path, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})


def lengths_for(T: int, B: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[B // 2] = T  # one full-length sequence
    return lengths


def close(got: np.ndarray, want: torch.Tensor) -> None:
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("cell,backend", [("lstm", "rnnkit"), ("gru", "rnnkit"),
                                          ("rnn", "torch")])
def test_language_model_equals_each_sequence_alone(tmp_path, cell, backend):
    torch.manual_seed(0)
    model = reference(LanguageModel(11, 4, 6, num_layers=2, cell=cell, backend=backend))
    (g,) = export_model(model, tmp_path / "lm.onnx")
    n_fields = 2 if cell == "lstm" else 1
    assert g.inputs == ["tokens", "lengths", "h0", "c0"][:2 + n_fields]
    for T, B in SIZES:
        tokens, lengths = torch.randint(0, 11, (T, B)), lengths_for(T, B, T)
        start = [torch.randn(2, B, 6) for _ in range(n_fields)]
        logits, *final = run(g.path, {"tokens": tokens, "lengths": lengths,
                                      **dict(zip(["h0", "c0"], start, strict=False))})
        for b in range(B):  # each sequence alone, unpadded, from its own start state
            n = int(lengths[b])
            state = tuple(s[:, b:b + 1] for s in start)
            want, want_state = model(tokens[:n, b:b + 1], state if n_fields > 1 else state[0])
            close(logits[:n, b], want[:, 0])
            for got_field, want_field in zip(final, want_state if n_fields > 1 else
                                             (want_state,), strict=True):
                close(got_field[:, b], want_field[:, 0])


@pytest.mark.parametrize("pooling,bidirectional,cell", [("last", True, "lstm"),
                                                        ("mean", False, "gru"),
                                                        ("max", True, "rnn")])
def test_classifier(tmp_path, pooling, bidirectional, cell):
    torch.manual_seed(1)
    model = reference(SequenceClassifier(3, vocab_size=11, input_size=4, hidden_size=6,
                                         num_layers=2, cell=cell, bidirectional=bidirectional,
                                         pooling=pooling))
    (g,) = export_model(model, tmp_path / "clf.onnx")
    for T, B in SIZES:
        tokens, lengths = torch.randint(0, 11, (T, B)), lengths_for(T, B, B)
        (logits,) = run(g.path, {"tokens": tokens, "lengths": lengths})
        close(logits, model(tokens, lengths))


def test_tagger_and_piano_roll_with_features(tmp_path):
    torch.manual_seed(2)
    tagger = reference(SequenceTagger(4, vocab_size=None, input_size=3, hidden_size=5,
                                      num_layers=2, cell="gru"))
    piano = reference(PianoRollModel(num_keys=7, hidden_size=5, cell="lstm", zoneout=0.2))
    (gt,) = export_model(tagger, tmp_path / "tagger.onnx")
    (gp,) = export_model(piano, tmp_path / "piano.onnx")
    for T, B in SIZES:
        lengths = lengths_for(T, B, 3)
        x = torch.randn(T, B, 3)
        close(run(gt.path, {"x": x, "lengths": lengths})[0], tagger(x, lengths))
        frames = (torch.rand(T, B, 7) < 0.3).float()
        close(run(gp.path, {"x": frames, "lengths": lengths})[0], piano(frames, lengths))


def test_forecaster_and_conditional_generator_equal_each_sequence_alone(tmp_path):
    torch.manual_seed(3)
    fc = reference(Forecaster(2, horizon=3, hidden_size=6, num_layers=2))
    fc.mean.fill_(0.5)
    fc.scale.fill_(2.0)
    gen = reference(ConditionalGenerator(3, vocab_size=9, embedding_size=4, hidden_size=6,
                                         condition_every_step=True))
    (gf,) = export_model(fc, tmp_path / "fc.onnx")
    (gg,) = export_model(gen, tmp_path / "gen.onnx")
    for T, B in SIZES:
        lengths = lengths_for(T, B, 4)
        x, v, tokens = torch.randn(T, B, 2), torch.randn(B, 3), torch.randint(0, 9, (T, B))
        (forecast,) = run(gf.path, {"x": x, "lengths": lengths})
        logits, h, c = run(gg.path, {"condition": v, "tokens": tokens, "lengths": lengths})
        for b in range(B):
            n = int(lengths[b])
            close(forecast[b], fc(x[:n, b:b + 1])[0])
            want, (wh, wc) = gen(v[b:b + 1], tokens[:n, b:b + 1])
            close(logits[:n, b], want[:, 0])
            close(h[:, b], wh[:, 0])
            close(c[:, b], wc[:, 0])


@pytest.mark.parametrize("attention,feeding,cell", [("bahdanau", True, "lstm"),
                                                    ("general", False, "gru"),
                                                    ("none", False, "lstm")])
def test_seq2seq_encoder_and_decoder_steps(tmp_path, attention, feeding, cell):
    torch.manual_seed(4)
    model = reference(Seq2Seq(11, 12, embedding_size=4, hidden_size=6, cell=cell,
                              bidirectional=True, attention=attention, input_feeding=feeding))
    enc, dec = export_model(model, tmp_path / "s2s.onnx")
    assert (enc.path.name, dec.path.name) == ("s2s.encoder.onnx", "s2s.decoder.onnx")
    assert enc.outputs == dec.inputs[1:]  # the encoder's outputs feed the decoder
    for S, B in SIZES:
        src, src_len = torch.randint(4, 11, (S, B)), lengths_for(S, B, 5)
        state = dict(zip(enc.outputs, run(enc.path, {"src": src, "src_len": src_len}),
                         strict=True))
        want = model.init_decoder(src, src_len)
        tokens = torch.full((B,), model.bos_id)
        for _ in range(3):  # three greedy steps, each graph output fed back
            out = dict(zip(dec.outputs, run(dec.path, {
                "tokens": tokens, **{k: torch.from_numpy(v) for k, v in state.items()}}),
                strict=True))
            logits, want, weights = model.decode_step(tokens, want)
            close(out["logits"], logits)
            if weights is not None:
                close(out["attention"], weights)
            for name in ("h", "c", "feed"):
                if name in state:
                    state[name] = out[f"{name}_n"]
            tokens = logits.argmax(-1)


def test_unknown_model_and_unexportable_module_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot export a Linear: rnnkit exports Language"):
        export_model(torch.nn.Linear(2, 3), tmp_path / "x.onnx")
    model = SequenceTagger(3, vocab_size=5, input_size=4, hidden_size=4)
    model.extra = rk.EchoStateNetwork(4, 20, 2, density=0.5, seed=0)
    with pytest.raises(ValueError, match="its 'extra' is a EchoStateNetwork, and its reserv"):
        export_model(model, tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_float64_model_runs_in_float64(tmp_path):
    # onnxruntime's LSTM takes float32 only, so a float64 model's layers become Loops
    torch.manual_seed(5)
    model = reference(SequenceTagger(3, vocab_size=None, input_size=4, hidden_size=5).double())
    (g,) = export_model(model, tmp_path / "tagger64.onnx")
    x, lengths = torch.randn(6, 2, 4, dtype=torch.float64), torch.tensor([6, 3])
    (logits,) = run(g.path, {"x": x, "lengths": lengths})
    assert logits.dtype == np.float64
    np.testing.assert_allclose(logits, model(x, lengths).detach().numpy(), rtol=0, atol=1e-12)
