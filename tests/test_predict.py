"""`rnnkit predict` and `rnnkit eval` on classification runs, end to end: a tiny text run and a
tiny series run from a user's .ts file, `--json` output, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.cli import main as cli

TINY = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "16",
        "--time-budget", "0", "--warmup-steps", "0", "--no-progress", "--dropout", "0",
        "--lr", "0.01"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """Words ending in 'a' are class A, in 'o' class O."""
    tmp = tmp_path_factory.mktemp("predict_text")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(120):
        stem = "".join(rng.choice(list("bcdfgklmnprst"), 4))
        lines.append(f"{stem}{'a' if i % 2 else 'o'}\t{'A' if i % 2 else 'O'}")
    (tmp / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp / "test.tsv").write_text("kmtpa\tA\nkmtpo\tO\nbrsla\tA\nbrslo\tA\n")
    assert cli(["train", "classify", "--data", str(tmp / "train.tsv"), "--out",
                str(tmp / "run"), "--max-steps", "60", "--eval-every", "30", *TINY]) == 0
    return tmp


def test_predict_texts_and_json(text_run, capsys):
    capsys.readouterr()
    assert cli(["predict", str(text_run / "run"), "kmtpa", "kmtpo", "--top", "2",
                "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("kmtpa\tA ") and lines[1].startswith("kmtpo\tO ")
    rows = json.loads(lines[-1])["predictions"]
    assert [r["input"] for r in rows] == ["kmtpa", "kmtpo"]
    assert [r["labels"][0][0] for r in rows] == ["A", "O"]
    assert all(abs(sum(p for _, p in r["labels"]) - 1) < 1e-4 for r in rows)  # both classes


def test_eval_json_agrees_with_predict(text_run, capsys):
    run, test = str(text_run / "run"), text_run / "test.tsv"
    capsys.readouterr()
    assert cli(["eval", run, "--test", str(test), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(out[-1])
    assert "accuracy: " in "\n".join(out) and "macro F1: " in "\n".join(out)
    pairs = [line.split("\t") for line in test.read_text().splitlines()]
    assert cli(["predict", run, *[t for t, _ in pairs], "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    guesses = [r["labels"][0][0] for r in rows]
    truth = [label for _, label in pairs]
    assert scores["examples"] == 4
    assert scores["accuracy"] == sum(g == t for g, t in zip(guesses, truth, strict=True)) / 4
    # the last pair is labelled A but ends in 'o': a trained model calls it O, so
    # accuracy is 3/4; macro F1 = mean(F1_A = 2*1*(2/3)/(1+2/3), F1_O = 2*(1/2)*1/(1/2+1))
    assert guesses == ["A", "O", "A", "O"]
    assert scores["f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    row = json.loads((text_run / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["split"] == "test" and row["accuracy"] == scores["accuracy"]


def test_eval_and_predict_errors_are_one_line(text_run, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("kmtpa\tA\nno tab on this line\n")
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("kmtpa\tZ\n")
    run = str(text_run / "run")
    for argv, expected in (
        (["eval", run, "--test", str(bad)], "bad.tsv' line 2: expected 2 tab-separated"),
        (["eval", run, "--test", str(unknown)], "labels ['Z'] are not among the model's 2"),
        (["eval", run, "--test", "ucr:NoSuchSet"], "'NoSuchSet' is not bundled with aeon"),
        (["predict", run, "x", "--top", "0"], "--top must be >= 1, got 0"),
        (["predict", str(tmp_path), "x"], "no checkpoint in"),
    ):
        capsys.readouterr()
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (argv, err)


def _write_ts(path, series, labels):
    lines = ["@problemName Ramps", "@timeStamps false", "@dimensions 2",
             "@equalLength false", "@classLabel true up down", "@data"]
    for s, label in zip(series, labels, strict=True):
        chans = [",".join(f"{v:.4f}" for v in s[:, c]) for c in range(s.shape[1])]
        lines.append(":".join(chans) + f":{label}")
    path.write_text("\n".join(lines) + "\n")


def test_series_run_from_a_ts_file(tmp_path, capsys):
    """Rising against falling ramps of 4-12 steps, two channels on different scales."""
    rng = np.random.default_rng(1)
    series, labels = [], []
    for i in range(80):
        T = int(rng.integers(4, 13))
        ramp = np.linspace(0, 1, T) * (1 if i % 2 else -1)
        s = np.stack([ramp + 0.05 * rng.normal(size=T), 100 + 50 * ramp], axis=1)
        series.append(s)
        labels.append("up" if i % 2 else "down")
    _write_ts(tmp_path / "train.ts", series[:60], labels[:60])
    _write_ts(tmp_path / "test.ts", series[60:], labels[60:])
    out = str(tmp_path / "run")
    assert cli(["train", "classify", "--data", str(tmp_path / "train.ts"), "--out", out,
                "--max-steps", "40", "--eval-every", "20", *TINY]) == 0
    capsys.readouterr()
    assert cli(["eval", out, "--test", str(tmp_path / "test.ts"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["examples"] == 20 and scores["accuracy"] >= 0.9
    assert cli(["predict", out, f"{tmp_path / 'test.ts'}:3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'test.ts'}:3\t") and line.endswith("\tup")
    for argv, expected in (
        (["eval", out, "--test", str(tmp_path / "none.tsv")], "does not exist"),
        (["predict", out, "some text"], "a series run takes ucr:NAME[:INDEX]"),
        (["classify", out, "some text"], "classifies series, not texts"),
    ):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (argv, err)
