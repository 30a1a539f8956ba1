"""Images as sequences: the idx reader against hand-written bytes, the loaders and splits,
the ImageClassifier's step orders against hand-built sequences, and tiny runs of `rnnkit train
classify` on images (rows, four-direction, pixels) on the fused engine with eval and predict."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main as cli
from rnnkit.data import images as img
from rnnkit.data.images import image_splits, load_images, read_idx, write_idx
from rnnkit.models.image_classifier import ImageClassifier


def _idx_bytes(code: int, dims: tuple, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def test_read_idx_hand_written_bytes(tmp_path):
    pixels = bytes(range(24))
    (tmp_path / "a").write_bytes(_idx_bytes(0x08, (2, 3, 4), pixels))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx_bytes(0x08, (2, 3, 4), pixels)))
    expected = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a", "b.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and np.array_equal(got, expected)
    # big-endian shorts and doubles
    (tmp_path / "s").write_bytes(_idx_bytes(0x0B, (3,), struct.pack(">hhh", 1, -2, 300)))
    assert read_idx(tmp_path / "s").tolist() == [1, -2, 300]
    (tmp_path / "d").write_bytes(_idx_bytes(0x0E, (2,), struct.pack(">dd", 0.5, -1.25)))
    assert read_idx(tmp_path / "d").tolist() == [0.5, -1.25]


def test_write_idx_round_trips(tmp_path):
    for arr in (np.arange(12, dtype=np.int32).reshape(3, 4) - 5,
                np.linspace(0, 1, 6, dtype=np.float32)):
        for compress in (False, True):
            write_idx(tmp_path / "x", arr, compress)
            assert np.array_equal(read_idx(tmp_path / "x"), arr)


@pytest.mark.parametrize("data, message", [
    (b"\x01\x02\x08\x01", r"not an idx file \(expected the magic number"),
    (_idx_bytes(0x07, (2,), b"ab"), "unknown idx type code 0x07 in byte 2"),
    (_idx_bytes(0x08, (2, 3), b"abc"), r"declares sizes \(2, 3\) of unsigned byte .* holds 3"),
    (_idx_bytes(0x08, (2,), b"abc"), "holds 3"),  # trailing bytes
    (b"\x00\x00\x08\x02\x00\x00", "ends inside its header"),
    (b"\x1f\x8b\x08\x00garbage", "a gzip file that cannot be decompressed"),
])
def test_read_idx_errors_name_the_file(tmp_path, data, message):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert "bad-images-idx3-ubyte" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(tmp_path / "missing")


def _stripes(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: the top half is bright, class 1: the left half; noise elsewhere."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        if c == 0:
            images[i, : size // 2] += 180
        else:
            images[i, :, : size // 2] += 180
    return images, labels.astype(np.uint8)


def _idx_dir(path, n_train=300, n_test=60, size=8):
    path.mkdir()
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = _stripes(n, size, seed)
        write_idx(path / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(path / f"{prefix}-labels-idx1-ubyte", labels)
    return path


def test_load_images_from_a_directory_and_a_file(tmp_path):
    d = _idx_dir(tmp_path / "set")
    train, test = load_images(str(d), "train"), load_images(str(d), "test")
    assert train.images.shape == (300, 8, 8) and len(test) == 60 and train.classes == ["0", "1"]
    one = load_images(str(d / "t10k-images-idx3-ubyte.gz"))
    assert np.array_equal(one.images, test.images) and np.array_equal(one.labels, test.labels)
    assert train.floats().max() <= 1.0
    tr, va, te = image_splits(str(d), 0.1, split_seed=3)
    assert len(tr) + len(va) == 300 and len(te) == 60 and abs(len(va) - 30) <= 1
    assert np.array_equal(image_splits(str(d), 0.1, 3)[1].images, va.images)  # seeded
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="holds neither 't10k-labels-idx1-ubyte'"):
        load_images(str(d), "test")
    with pytest.raises(FileNotFoundError, match="has no labels file"):
        load_images(str(d / "t10k-images-idx3-ubyte.gz"))
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="holds 300 images but .* holds 5 labels"):
        load_images(str(d), "train")


def test_fashion_mnist_missing_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(img, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_images("fashion-mnist")


def test_fashion_mnist_package():
    if not img.FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed: {img.INSTALL_HINT}")
    train, valid, test = image_splits("fashion-mnist", 0.1, 0)
    assert (len(train), len(valid), len(test)) == (54_000, 6_000, 10_000)
    assert train.images.shape[1:] == (28, 28) and train.classes[0] == "T-shirt/top"
    assert np.bincount(valid.labels).tolist() == [600] * 10  # stratified


def test_step_orders_match_hand_built_sequences():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 6)  # (R, B, C)
    pixels = ImageClassifier(4, 8, 6, steps="pixels", cell="gru", hidden_size=5)
    seq = torch.stack([x[r, :, c] for r in range(8) for c in range(6)]).unsqueeze(-1)
    _, h = pixels.rnn(seq)  # scan-line order, one pixel per step
    assert torch.allclose(pixels(x), pixels.head(h[-1]), atol=1e-6)
    rows = ImageClassifier(4, 8, 6, steps="rows", cell="lstm", hidden_size=5,
                           bidirectional=True)
    _, (h, _) = rows.rnn(x)
    assert torch.allclose(rows(x), rows.head(torch.cat([h[0], h[1]], -1)), atol=1e-6)
    four = ImageClassifier(4, 8, 6, steps="four-direction", cell="rnn", hidden_size=3, patch=2)
    grid = torch.empty(3, 4, 4, 3)  # (B, p*p, R/p, C/p), patch pixels in row-major order
    for i in range(4):
        for j in range(3):
            grid[:, :, i, j] = x[2 * i: 2 * i + 2, :, 2 * j: 2 * j + 2].permute(1, 0, 2) \
                .reshape(3, 4)
    assert torch.allclose(four(x), four.head(four.sweeps[0](grid).flatten(1)), atol=1e-6)
    with pytest.raises(ValueError, match="do not split into 4x4 patches"):
        ImageClassifier(4, 8, 6, steps="four-direction", patch=4)
    with pytest.raises(ValueError, match=r"images must be \(rows=8, B, cols=6\)"):
        rows(torch.rand(6, 3, 8))


@pytest.mark.parametrize("steps, cell", [("rows", "lstm"), ("pixels", "irnn"),
                                         ("four-direction", "gru")])
def test_fused_engine_agrees_with_reference(ext, steps, cell):
    kw = dict(steps=steps, cell=cell, hidden_size=6, patch=2)
    fused = ImageClassifier(3, 4, 6, engine="fused", **kw)
    ref = ImageClassifier(3, 4, 6, engine="reference", **kw)
    ref.load_state_dict(fused.state_dict())
    x, y = torch.rand(4, 5, 6, dtype=torch.float32), torch.tensor([0, 1, 2, 0, 1])
    lf, lr = F.cross_entropy(fused(x), y), F.cross_entropy(ref(x), y)
    lf.backward()
    lr.backward()
    assert torch.allclose(lf, lr, atol=1e-5)
    for (name, a), b in zip(fused.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


TINY = ["--hidden-size", "12", "--batch-size", "16", "--time-budget", "0", "--no-progress",
        "--warmup-steps", "0", "--dropout", "0", "--lr", "0.01", "--eval-every", "2"]


def test_rows_run_learns_then_eval_and_predict(ext, tmp_path, capsys):
    d = _idx_dir(tmp_path / "set")
    run = tmp_path / "run"
    assert cli(["train", "classify", "--data", str(d), "--image-steps", "rows", "--cell",
                "lstm", "--no-bidirectional", "--out", str(run), "--max-steps", "40",
                *TINY]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.9  # the stripes are easy; chance is ~0.5
    capsys.readouterr()
    assert cli(["eval", str(run), "--test", str(d), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["examples"] == 60 and scores["accuracy"] == summary["test"]["accuracy"]
    assert cli(["predict", str(run), str(d / "t10k-images-idx3-ubyte.gz") + ":3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert len(rows) == 1 and rows[0]["input"].endswith(":3")
    assert rows[0]["true"] == str(int(read_idx(d / "t10k-labels-idx1-ubyte")[3]))
    alone = tmp_path / "new-images-idx3-ubyte"  # images without a labels file
    write_idx(alone, _stripes(2, seed=5)[0])
    assert cli(["predict", str(run), str(alone), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert [r["true"] for r in rows] == [None, None] and rows[1]["input"].endswith(":1")
    assert cli(["eval", str(run), "--test", "digits"]) == 2  # a one-line error
    assert "held-out part of the 8x8 digits" in capsys.readouterr().err


def test_four_direction_and_pixels_runs(ext, tmp_path):
    d = _idx_dir(tmp_path / "set", n_train=120, n_test=20)
    assert cli(["train", "classify", "--data", str(d), "--model", "four-direction",
                "--patch", "2", "--cell", "gru", "--out", str(tmp_path / "four"),
                "--max-steps", "2", *TINY]) == 0
    four = json.loads((tmp_path / "four" / "best" / "config.json").read_text())
    assert four["model_args"]["steps"] == "four-direction"
    pytest.importorskip("sklearn")
    assert cli(["train", "classify", "--data", "digits", "--image-steps", "pixels", "--cell",
                "irnn", "--no-bidirectional", "--out", str(tmp_path / "px"),
                "--max-steps", "2", *TINY]) == 0
    summary = json.loads((tmp_path / "px" / "summary.json").read_text())
    assert summary["test"]["accuracy"] >= 0 and summary["step"] == 2
    cfg = json.loads((tmp_path / "px" / "best" / "config.json").read_text())
    assert cfg["model_args"]["steps"] == "pixels" and cfg["model_args"]["rows"] == 8


def test_image_options_are_refused_for_texts(tmp_path):
    from rnnkit.train.classify import TINY as TEXT_TINY
    from rnnkit.train.classify import ClassifyConfig, main
    from rnnkit.train.config import config_from_dict

    data = tmp_path / "pairs.tsv"
    data.write_text("abca\tA\nbcdo\tO\n" * 20, encoding="utf-8")
    for extra in ({"cell": "irnn"}, {"model": "four-direction"}):
        cfg = config_from_dict(ClassifyConfig, {**TEXT_TINY, "data": str(data),
                                                "out": str(tmp_path / "run"), **extra})
        with pytest.raises(ValueError, match="are for image data"):
            main(cfg, log=lambda _: None)
