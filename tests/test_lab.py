"""Synthetic tasks and the `rnnkit demo` command that trains on one."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.cli import main
from rnnkit.cli.demo import run
from rnnkit.lab import (
    TEMPORAL_ORDER_SYMBOLS,
    adding_problem,
    copy_problem,
    pixel_digits,
    temporal_order,
)


def test_adding_problem_target_is_sum_of_the_two_marked_values():
    x, y = adding_problem(16, 10, torch.Generator().manual_seed(3))
    assert x.shape == (10, 16, 2)
    markers = x[..., 1]
    assert torch.equal(markers.sum(0), torch.full((16,), 2.0))
    assert torch.equal(markers[:5].sum(0), torch.ones(16))  # one mark in each half
    torch.testing.assert_close((x[..., 0] * markers).sum(0), y)


def test_copy_problem_target_repeats_the_data_after_the_cue():
    x, y = copy_problem(4, delay=5, n_symbols=6, n_copy=3, generator=torch.Generator())
    assert x.shape == y.shape == (11, 4)
    torch.testing.assert_close(y[-3:], x[:3])
    assert torch.equal(x[3 + 5 - 1], torch.full((4,), 7))
    assert not y[:-3].any()


def test_lstm_learns_the_adding_problem():
    mse = run(length=8, steps=400, hidden_size=16, batch=32, lr=1e-2, log_every=400)
    assert mse < 0.02  # a constant predictor scores ~0.167


def test_demo_command_prints_losses(capsys):
    assert main(["demo", "--steps", "3", "--length", "5", "--hidden-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "adding problem, T=5" in out and "step     3" in out


def test_temporal_order_sequences_follow_the_paper():
    x, y, lengths = temporal_order(500, 100, torch.Generator().manual_seed(0))
    assert x.shape == (int(lengths.max()), 500) and lengths.min() >= 100 and lengths.max() <= 110
    sym = {s: i for i, s in enumerate(TEMPORAL_ORDER_SYMBOLS)}
    assert (x[0] == sym["E"]).all()
    for b in range(500):
        seq = x[: lengths[b], b]
        assert seq[-1] == sym["B"] and (x[lengths[b]:, b] == sym["B"]).all()
        where = ((seq == sym["X"]) | (seq == sym["Y"])).nonzero().flatten().tolist()
        assert len(where) == 2 and 10 <= where[0] <= 20 and 50 <= where[1] <= 60
        first, second = (seq[where] == sym["Y"]).long().tolist()
        assert y[b] == 2 * first + second  # XX, XY, YX, YY
        assert ((seq[1:-1] < 4) | (seq[1:-1] == sym["X"]) | (seq[1:-1] == sym["Y"])).all()
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_pixel_digits_reads_each_image_in_scan_line_order():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    x_train, y_train = pixel_digits("train")
    x_test, y_test = pixel_digits("test")
    assert x_train.shape == (64, len(y_train), 1) and len(y_train) + len(y_test) == 1797
    assert len(y_test) == 449 and 0.0 <= x_train.min() and x_train.max() <= 1.0
    images = torch.as_tensor(load_digits().images, dtype=torch.float32) / 16
    first = x_test[:, 0, 0].reshape(8, 8)  # one image back from its 64 steps
    match = [i for i in range(len(images)) if torch.equal(images[i], first)]
    assert match and int(load_digits().target[match[0]]) == int(y_test[0])
    with pytest.raises(ValueError, match="split"):
        pixel_digits("valid")


@pytest.mark.parametrize("task", ["adding", "copy", "temporal-order", "pixels"])
def test_lab_task_command_trains_and_writes_a_run(task, tmp_path, capsys):
    if task == "pixels":
        pytest.importorskip("sklearn")
    out = tmp_path / task
    assert main(["lab", task, "--preset", "tiny", "--cell", "gru", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == task and summary["step"] == 6
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "valid"}
    assert all(r["baseline"] == summary["baseline"] for r in rows if r["split"] == "valid")
    assert (out / "loss.png").exists() and (out / "best" / "model.safetensors").exists()
    assert summary["test_checkpoint"] == "best"
    expected = pixel_digits("test")[1].shape[0] if task == "pixels" else 40  # tiny preset
    assert summary["test_size"] == expected


@pytest.mark.parametrize("task", ["adding", "copy", "temporal-order"])
def test_lab_test_scores_the_best_checkpoint_on_fresh_sequences(task, tmp_path, monkeypatch):
    from rnnkit.lab import experiments
    from rnnkit.train.checkpoint import find_checkpoint, load_model_weights

    out = tmp_path / task
    assert main(["lab", task, "--preset", "tiny", "--cell", "lstm", "--max-steps", "9",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    cfg = experiments.LabConfig(**{**json.loads((out / "config.json").read_text())})
    model = experiments._TaskModel(cfg)
    load_model_weights(find_checkpoint(out, "best"), model)
    model.eval()
    # one pass over all 40 sequences, and chunks of 7 (the last one short), agree
    whole = experiments._test(cfg, model)
    monkeypatch.setattr(experiments, "_TEST_CHUNK", 7)
    chunked = experiments._test(cfg, model)
    assert whole["size"] == chunked["size"] == 40
    assert chunked["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert chunked["error_rate"] == pytest.approx(whole["error_rate"], abs=1e-6)
    assert summary["test_loss"] == pytest.approx(whole["loss"], rel=1e-5)
    # fresh sequences: not the validation set
    valid = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(r)["split"] == "valid"]
    best = min(valid, key=lambda r: r["loss"])
    assert summary["test_loss"] != pytest.approx(best["loss"], rel=1e-6)


def test_lab_baselines_are_the_published_ones():
    from rnnkit.lab.experiments import baseline

    assert baseline("adding", 200) == pytest.approx(0.167, abs=1e-3)
    assert baseline("copy", 200) == pytest.approx(10 * math.log(8) / 220)
    assert baseline("temporal-order", 100) == pytest.approx(math.log(4))
