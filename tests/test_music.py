"""Polyphonic music: piano-roll loading, next-frame pairs, the Bernoulli NLL, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data.music import collate_rolls, load_piano_rolls
from rnnkit.models.piano_roll import PianoRollModel
from rnnkit.train.config import config_from_dict
from rnnkit.train.music import TINY, MusicConfig, main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "polymusic"


def _mat(tmp_path: Path) -> Path:
    """A tiny piano-roll file: each piece repeats a 2-frame pattern (learnable)."""
    scipy_io = pytest.importorskip("scipy.io")
    import numpy as np

    def piece(T, key):
        roll = np.zeros((T, 88), dtype=np.uint8)
        roll[::2, key] = 1
        roll[1::2, key + 4] = 1
        return roll

    def cell(pieces):
        arr = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            arr[0, i] = p
        return arr

    path = tmp_path / "tiny.mat"
    scipy_io.savemat(str(path), {
        "traindata": cell([piece(12, 40 + i % 3) for i in range(8)]),
        "validdata": cell([piece(10, 41), piece(9, 40)]),
        "testdata": cell([piece(11, 42)]),
    })
    return path


def test_load_and_next_frame_pairs(tmp_path):
    pieces = load_piano_rolls(_mat(tmp_path), "valid")
    assert [p.shape for p in pieces] == [(10, 88), (9, 88)]
    x, y, lengths = collate_rolls(pieces)
    assert lengths.tolist() == [9, 8] and x.shape == y.shape == (9, 2, 88)
    torch.testing.assert_close(y[:8, 1], pieces[1][1:])
    torch.testing.assert_close(x[:8, 1], pieces[1][:-1])
    assert not y[8:, 1].any()
    with pytest.raises(ValueError, match="split must be one of"):
        load_piano_rolls(_mat(tmp_path), "dev")


@pytest.mark.skipif(not SHARED.exists(), reason="shared/data is absent")
def test_jsb_chorales_split_sizes():
    sizes = {s: len(load_piano_rolls(SHARED / "JSB_Chorales.mat", s))
             for s in ("train", "valid", "test")}
    assert sizes == {"train": 229, "valid": 76, "test": 77}


def test_nll_is_the_summed_bernoulli_log_likelihood():
    model = PianoRollModel(hidden_size=8).double()
    x = torch.bernoulli(torch.full((5, 2, 88), 0.1, dtype=torch.float64))
    y = torch.bernoulli(torch.full((5, 2, 88), 0.1, dtype=torch.float64))
    lengths = torch.tensor([5, 3])
    p = torch.sigmoid(model(x, lengths))
    log_lik = (y * p.log() + (1 - y) * (1 - p).log()).sum(-1)  # (T, B)
    expected = -(log_lik[:, 0].sum() + log_lik[:3, 1].sum()) / 8
    torch.testing.assert_close(model.loss(x, y, lengths), expected)


def test_padding_does_not_change_a_piece_loss():
    model = PianoRollModel(hidden_size=8).double()
    pieces = [torch.bernoulli(torch.full((n, 88), 0.1)).double() for n in (7, 4)]
    x, y, lengths = collate_rolls(pieces)
    total, count = model.nll(x.double(), y.double(), lengths)
    alone = sum(model.nll(*[t.double() for t in collate_rolls([p])[:2]])[0] for p in pieces)
    torch.testing.assert_close(total, alone)
    assert count == 6 + 3


def test_generate_samples_binary_frames():
    model = PianoRollModel(hidden_size=8)
    frames = model.generate(torch.zeros(3, 88), steps=4, generator=torch.Generator())
    assert frames.shape == (4, 88) and set(frames.unique().tolist()) <= {0.0, 1.0}


def test_training_learns_the_pattern(tmp_path):
    cfg = config_from_dict(MusicConfig, {**TINY, "data": str(_mat(tmp_path)),
                                         "out": str(tmp_path / "run"), "max_steps": 150,
                                         "eval_every": 50, "lr": 3e-2, "hidden_size": 32,
                                         "batch_size": 8, "schedule": "constant",
                                         "dropout": 0.0})
    summary = main(cfg, log=lambda _: None)
    # Knowing only how often each key sounds (6 keys, one per frame) scores
    # -log(1/6) - 5 log(5/6) = 2.70 nats; knowing nothing (p = 0.5) scores 88 log 2 = 61.
    marginal = -math.log(1 / 6) - 5 * math.log(5 / 6)
    assert summary["test_nll"] < 1.0 < marginal
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["test_nll"] == summary["test_nll"]


def test_cli_requires_data(capsys):
    assert cli(["train", "music", "--max-steps", "1"]) == 2
    assert "data is required" in capsys.readouterr().err
