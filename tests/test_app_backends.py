"""Every application trains on rnnkit's engine by default, and the same seed gives the same
losses on both backends: a few steps with `backend="rnnkit"` (the fused engine) and with
`backend="torch"` (torch.nn's layers) from one seed agree within float32 tolerance.

The two backends build the same parameters in the same order from the same seed (checked
first), so any difference in the losses is a difference in the recurrent computation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnkit.models.factory import make_rnn
from rnnkit.train import classify, forecast, lm, music, seq2seq, tag
from rnnkit.train.config import config_from_dict


def _text(tmp: Path) -> dict[str, Any]:
    data = tmp / "text.txt"
    data.write_text("to be or not to be, that is the question.\n" * 30)
    return {"data": str(data), "sample_length": 0}


def _pairs(tmp: Path) -> dict[str, Any]:
    data = tmp / "pairs.tsv"
    data.write_text("".join(f"{a} {b} {c}\t{c} {b} {a}\n" for a in "abcd" for b in "abcd"
                            for c in "abc"))
    return {"train": str(data)}


def _labels(tmp: Path) -> dict[str, Any]:
    data = tmp / "labels.tsv"
    data.write_text("".join(f"{w}{i}\t{w[0]}\n" for i in range(30)
                            for w in ("alpha", "beta", "gamma")))
    return {"data": str(data), "baseline": False}


def _rolls(tmp: Path) -> dict[str, Any]:
    scipy_io = pytest.importorskip("scipy.io")
    import numpy as np

    def piece(T: int, key: int) -> np.ndarray:
        roll = np.zeros((T, 88), dtype=np.uint8)
        roll[::2, key], roll[1::2, key + 4] = 1, 1
        return roll

    def cell(pieces: list) -> np.ndarray:
        arr = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            arr[0, i] = p
        return arr

    path = tmp / "tiny.mat"
    scipy_io.savemat(str(path), {"traindata": cell([piece(12, 40 + i % 3) for i in range(8)]),
                                 "validdata": cell([piece(10, 41)]),
                                 "testdata": cell([piece(11, 42)])})
    return {"data": str(path)}


def _two_roll_sets(tmp: Path) -> dict[str, Any]:
    first = _rolls(tmp)["data"]
    second = tmp / "second.mat"
    second.write_bytes(Path(first).read_bytes())
    return {"data": f"{first},{second}", "conditional": True}


def _series(tmp: Path) -> dict[str, Any]:
    path = tmp / "series.csv"
    path.write_text("y\n" + "".join(f"{10 + 3 * math.sin(2 * math.pi * t / 6) + 0.1 * t:.5f}\n"
                                    for t in range(80)))
    return {"data": str(path), "column": "y"}


def _conll(tmp: Path) -> dict[str, Any]:
    path = tmp / "tags.conll"
    sentences = [[("Anna", "B-PER"), ("visits", "O"), ("Paris", "B-LOC")],
                 [("Bob", "B-PER"), ("Lee", "I-PER"), ("left", "O")],
                 [("in", "O"), ("New", "B-LOC"), ("York", "I-LOC"), ("today", "O")]] * 6
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences))
    return {"train": str(path)}


APPS = {  # task -> (module, its config class, the data and settings of the run)
    "lm": (lm, lm.LMConfig, _text),
    "seq2seq": (seq2seq, seq2seq.Seq2SeqConfig, _pairs),
    "classify": (classify, classify.ClassifyConfig, _labels),
    "music": (music, music.MusicConfig, _rolls),
    "forecast": (forecast, forecast.ForecastConfig, _series),
    "tag": (tag, tag.TagConfig, _conll),
    "music-conditional": (music, music.MusicConfig, _two_roll_sets),
}


def _train_losses(task: str, tmp: Path, **settings: Any) -> list[tuple[int, str, float]]:
    module, cls, data = APPS[task]
    out = tmp / f"run-{settings.get('backend', 'default')}"
    cfg = config_from_dict(cls, {**module.TINY, **data(tmp), "dropout": 0.0, "out": str(out),
                                 **settings})
    module.main(cfg, log=lambda s: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["split"], r["loss"]) for r in rows if "loss" in r]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_both_backends_build_the_same_parameters_from_one_seed(cell):
    torch.manual_seed(0)
    ours = make_rnn(cell, 5, 7, num_layers=2, backend="rnnkit", bidirectional=True)
    torch.manual_seed(0)
    theirs = make_rnn(cell, 5, 7, num_layers=2, backend="torch", bidirectional=True)
    assert type(ours).__module__.startswith("rnnkit.layers")
    assert isinstance(theirs, torch.nn.RNNBase)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("task", sorted(APPS))
def test_the_default_backend_runs_the_fused_engine(task, tmp_path, ext, monkeypatch):
    """The tiny presets that the application tests use train on the engine, not torch.nn."""
    import rnnkit.engine as engine
    calls = []
    def spying(name: str):
        real = getattr(engine, name)

        def spy(*a, **k):
            calls.append(name)
            return real(*a, **k)
        return spy

    for name in ("fused_layer", "fused_layer_flat", "fused_direction", "skip_direction"):
        monkeypatch.setattr(engine, name, spying(name))
    _train_losses(task, tmp_path)
    assert calls, f"{task}: no fused engine call while training with the default backend"


@pytest.mark.parametrize("task", sorted(APPS))
def test_same_seed_same_losses_on_both_backends(task, tmp_path, ext):
    ours = _train_losses(task, tmp_path, backend="rnnkit")
    theirs = _train_losses(task, tmp_path, backend="torch")
    assert [r[:2] for r in ours] == [r[:2] for r in theirs] and len(ours) >= 2
    for (step, split, a), (_, _, b) in zip(ours, theirs, strict=True):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), (step, split, a, b)
