"""`rnnkit export RUN --onnx FILE` end to end on tiny trained runs, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.pairs import write_pairs
from rnnkit.train.lm import load_language_model
from rnnkit.train.seq2seq import load_seq2seq

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LM_FLAGS = ["--embedding-size", "8", "--hidden-size", "12", "--num-layers", "2",
            "--batch-size", "4", "--seq-len", "8", "--max-steps", "3", "--time-budget", "0",
            "--eval-every", "3", "--eval-batches", "1", "--sample-length", "0",
            "--no-progress", "--backend", "torch"]
S2S_FLAGS = ["--embedding-size", "8", "--hidden-size", "8", "--batch-size", "8",
             "--max-epochs", "0", "--max-steps", "2", "--eval-every", "2",
             "--eval-examples", "4", "--no-progress", "--backend", "torch", "--threads", "1",
             "--attention", "bahdanau"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    data = tmp / "text.txt"
    data.write_text("the quick brown fox jumps over the lazy dog.\n" * 20)
    assert main(["train", "lm", "--data", str(data), "--out", str(tmp / "run"),
                 *LM_FLAGS]) == 0
    return tmp / "run"


def test_export_language_model_run(lm_run, tmp_path, capsys):
    target = tmp_path / "lm.onnx"
    assert main(["export", str(lm_run), "--onnx", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"{target}: next-token logits" in out
    assert "inputs:  tokens, lengths, h0, c0" in out and "outputs: logits, h_n, c_n" in out
    model, vocab, _ = load_language_model(lm_run)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    texts = ["the lazy dog", "fox", "over the quick"]
    ids = [vocab.encode(t) for t in texts]
    T, B = max(map(len, ids)), len(ids)
    tokens = torch.zeros(T, B, dtype=torch.long)
    for b, seq in enumerate(ids):
        tokens[:len(seq), b] = seq
    lengths = torch.tensor([len(s) for s in ids])
    zeros = np.zeros((2, B, 12), dtype=np.float32)
    logits, h, c = session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy(),
                                      "h0": zeros, "c0": zeros})
    with torch.no_grad():
        for b, seq in enumerate(ids):  # each text alone through the loaded run's model
            want, (wh, wc) = model(seq.unsqueeze(1))
            np.testing.assert_allclose(logits[:len(seq), b], want[:, 0], rtol=0, atol=1e-5)
            np.testing.assert_allclose(h[:, b], wh[:, 0], rtol=0, atol=1e-5)
            np.testing.assert_allclose(c[:, b], wc[:, 0], rtol=0, atol=1e-5)


def test_export_refuses_to_overwrite_and_reports_bad_runs(lm_run, tmp_path, capsys):
    target = tmp_path / "lm.onnx"
    target.write_bytes(b"mine")
    assert main(["export", str(lm_run), "--onnx", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit export: error: ") and "--overwrite" in err
    assert target.read_bytes() == b"mine"
    assert main(["export", str(lm_run), "--onnx", str(target), "--overwrite"]) == 0
    assert target.stat().st_size > 1000
    assert main(["export", str(tmp_path / "nowhere"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    assert main(["export", str(lm_run), "--onnx", str(tmp_path / "y.onnx"), "--opset",
                 "9"]) == 2
    assert "--opset must be in [14, 20]" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm.onnx"]


def test_export_seq2seq_run_writes_encoder_and_decoder(tmp_path, capsys):
    pairs = [("a b c", "c b a"), ("b a", "a b"), ("c c a", "a c c"), ("a", "a")] * 8
    train = write_pairs(pairs, tmp_path / "train.tsv")
    run = tmp_path / "run"
    assert main(["train", "seq2seq", "--train", str(train), "--valid", str(train),
                 "--out", str(run), *S2S_FLAGS]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", str(tmp_path / "s2s.onnx")]) == 0
    out = capsys.readouterr().out
    assert "s2s.encoder.onnx: encoder" in out and "s2s.decoder.onnx: one decoder step" in out
    model, src_vocab, _, _ = load_seq2seq(run)
    enc = ort.InferenceSession(str(tmp_path / "s2s.encoder.onnx"))
    dec = ort.InferenceSession(str(tmp_path / "s2s.decoder.onnx"))
    ids = [src_vocab.encode("a b c"), src_vocab.encode("b a")]
    src_len = torch.tensor([len(i) for i in ids])
    src = torch.full((int(src_len.max()), 2), model.pad_id)  # (S, B), padded
    for b, seq in enumerate(ids):
        src[:len(seq), b] = seq
    state = enc.run(None, {"src": src.numpy(), "src_len": src_len.numpy()})
    names = [i.name for i in dec.get_inputs()]
    tokens = torch.full((2,), model.bos_id)
    feeds = {"tokens": tokens.numpy(), **dict(zip(names[1:], state, strict=True))}
    logits = dec.run(None, feeds)[0]
    with torch.no_grad():
        want, _, _ = model.decode_step(tokens, model.init_decoder(src, src_len))
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("task", ["copy", "adding"])
def test_export_lab_run(tmp_path, capsys, task):
    from rnnkit.export.runs import load_run_model

    run = tmp_path / "run"
    assert main(["lab", task, "--preset", "tiny", "--cell", "lstm", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", str(tmp_path / "lab.onnx")]) == 0
    name = "tokens" if task == "copy" else "x"  # copy's symbols go through an embedding
    assert f"inputs:  {name}, lengths" in capsys.readouterr().out
    model = load_run_model(run)
    for m in model.modules():
        if hasattr(m, "engine"):
            m.engine = "reference"
    T, B = 9, 4
    x = torch.randint(0, 10, (T, B)) if task == "copy" else torch.rand(T, B, 2)
    lengths = torch.tensor([9, 3, 6, 1])
    (y,) = ort.InferenceSession(str(tmp_path / "lab.onnx")).run(
        None, {name: x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, model(x, lengths), rtol=0, atol=1e-5)


def test_export_classify_run(tmp_path, capsys):
    from rnnkit.train.classify import load_classifier

    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{w}\t{w[-1].upper()}\n" for w in
                            ["banta", "kesto", "mirda", "polto", "sanda", "tirmo"] * 6))
    run = tmp_path / "run"
    assert main(["train", "classify", "--data", str(data), "--out", str(run), "--max-steps",
                 "2", "--time-budget", "0", "--eval-every", "2", "--no-progress",
                 "--hidden-size", "8", "--embedding-size", "4"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", str(tmp_path / "clf.onnx")]) == 0
    assert "inputs:  tokens, lengths" in capsys.readouterr().out
    model, vocab, _ = load_classifier(run)
    model.rnn.engine = "reference"
    ids = [vocab.encode(w) for w in ("banta", "po", "mirdasanda")]
    lengths = torch.tensor([len(i) for i in ids])
    tokens = torch.zeros(int(lengths.max()), len(ids), dtype=torch.long)
    for b, seq in enumerate(ids):
        tokens[:len(seq), b] = seq
    (logits,) = ort.InferenceSession(str(tmp_path / "clf.onnx")).run(
        None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(tokens, lengths), rtol=0, atol=1e-5)
