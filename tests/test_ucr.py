"""Time-series classification: the .ts reader, per-channel scaling, 1-NN DTW against brute
force, and a tiny ucr:JapaneseVowels run on the fused engine scored by `rnnkit eval`."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data.series import SeriesBatches, Standardizer, stratified_split
from rnnkit.data.ts_files import read_ts
from rnnkit.train.classify_baselines import dtw_distance, dtw_matrix, nn1_dtw

TS = """# a comment
@problemName Tiny
@timeStamps false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:10,20,30:up
3,2:30,?:down
"""


def _needs(package):
    """Skip unless `package` is installed (located only: importing aeon is slow)."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")


def test_read_ts_multivariate_variable_length_and_missing(tmp_path):
    path = tmp_path / "tiny.ts"
    path.write_text(TS)
    data = read_ts(path)
    assert data.name == "Tiny" and data.classes == ["up", "down"] and data.channels == 2
    assert data.labels == ["up", "down"]
    assert data.series[0].tolist() == [[1, 10], [2, 20], [3, 30]]  # (T, C)
    assert data.series[1][0].tolist() == [3, 30] and np.isnan(data.series[1][1, 1])


@pytest.mark.parametrize("body,expected", [
    ("1,2:3,4:up\n1,2:down\n", "line 9: 1 channels, expected 2"),
    ("1,x:3,4:up\n", "line 8: expected comma-separated numbers (or '?'), got 'x'"),
    ("1,2:3,4:left\n", "labels ['left'] are not among the @classLabel ones"),
    ("", "holds no series after '@data'"),
])
def test_read_ts_errors_name_the_line(tmp_path, body, expected):
    path = tmp_path / "bad.ts"
    path.write_text(TS.split("@data\n")[0] + "@data\n" + body)
    with pytest.raises(ValueError) as err:
        read_ts(path)
    assert expected in str(err.value) and "bad.ts" in str(err.value)


def test_malformed_series_file_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.ts"
    path.write_text("@problemName X\n1,2,3:up\n")
    assert cli(["train", "classify", "--data", str(path), "--out", str(tmp_path / "r"),
                "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 2: expected an '@key value' header" in err


def test_standardizer_uses_training_statistics_and_ignores_nan():
    s = Standardizer.fit([np.array([[1.0, np.nan], [3.0, 4.0]]), np.array([[5.0, 8.0]])])
    assert s.mean == [3.0, 6.0]
    assert np.allclose(s.std, [np.sqrt(8 / 3), 2.0])
    out = s.transform(np.array([[3.0, np.nan], [3.0 + np.sqrt(8 / 3), 10.0]]))
    assert np.allclose(out, [[0.0, 0.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"series must be \(T, 2\).*got shape \(3, 1\)"):
        s.transform(np.zeros((3, 1)))


def test_stratified_split_holds_out_every_class_reproducibly():
    labels = ["a"] * 20 + ["b"] * 5 + ["c"] * 2
    kept, held = stratified_split(labels, 0.2, seed=1)
    assert sorted(kept + held) == list(range(27))
    assert sorted(labels[i] for i in held) == ["a"] * 4 + ["b", "c"]
    assert stratified_split(labels, 0.2, seed=1) == (kept, held)
    assert stratified_split(labels, 0.2, seed=2)[1] != held


def test_series_batches_pad_past_each_length():
    series = [np.ones((3, 2), np.float32), 2 * np.ones((1, 2), np.float32)]
    x, lengths, y = SeriesBatches(series, [1, 0], batch_size=2, shuffle=False).batch(0)
    assert x.shape == (3, 2, 2) and lengths.tolist() == [3, 1] and y.tolist() == [1, 0]
    assert (x[1:, 1] == 0).all() and (x[0, 1] == 2).all() and (x[:, 0] == 1).all()


def _brute_dtw(a, b, window=None):
    """The least cost over every warping path, enumerated one by one."""
    best = np.inf

    def walk(i, j, acc):
        nonlocal best
        if window is not None and abs(i - j) > window:
            return
        acc += float(((a[i] - b[j]) ** 2).sum())
        if (i, j) == (len(a) - 1, len(b) - 1):
            best = min(best, acc)
            return
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            if i + di < len(a) and j + dj < len(b):
                walk(i + di, j + dj, acc)

    walk(0, 0, 0.0)
    return best


def test_dtw_equals_brute_force_over_all_paths():
    rng = np.random.default_rng(0)
    queries = [rng.normal(size=(n, 2)) for n in (1, 3, 4, 5)]
    refs = [rng.normal(size=(n, 2)) for n in (2, 4, 3)]
    expected = np.array([[_brute_dtw(q, r) for r in refs] for q in queries])
    assert np.allclose(dtw_matrix(queries, refs), expected, rtol=1e-12)
    assert np.allclose(dtw_matrix(queries, refs, window=1),
                       [[_brute_dtw(q, r, 1) for r in refs] for q in queries], rtol=1e-12)
    # one query at a time (a block of one) gives the same numbers
    assert np.allclose(dtw_matrix(queries, refs, block=1), expected, rtol=1e-12)


def test_dtw_by_hand():
    assert dtw_distance([0, 1, 2], [0, 0, 1, 2]) == 0.0  # the repeated 0 is absorbed
    assert dtw_distance([0, 1], [0, 3]) == 4.0  # (1 - 3)^2
    assert dtw_distance([0, 5, 0], [0, 0]) == 25.0  # the 5 must be matched to some 0
    assert dtw_distance([[0, 0], [1, 1]], [[0, 0], [1, 3]]) == 4.0  # channels summed


def test_nn1_dtw_matches_shifted_shapes_where_euclidean_fails():
    early_bump = np.array([0, 5, 0, 0, 0, 0, 0, 0], float)
    flat = np.zeros(8)
    late_bump = np.array([0, 0, 0, 0, 0, 0, 5, 0], float)
    assert nn1_dtw([early_bump, flat], ["bump", "flat"], [late_bump, flat + 1]) == \
        ["bump", "flat"]
    # Euclidean distance puts the late bump nearer the flat line (25 against 50): DTW's
    # warping (distance 0 to the early bump) is what gets it right.
    assert np.sum((late_bump - flat) ** 2) < np.sum((late_bump - early_bump) ** 2)


@pytest.fixture(scope="module")
def vowels_run(tmp_path_factory):
    _needs("aeon")
    out = tmp_path_factory.mktemp("ucr") / "run"
    assert cli(["train", "classify", "--data", "ucr:JapaneseVowels", "--out", str(out),
                "--hidden-size", "16", "--batch-size", "32", "--max-steps", "6",
                "--time-budget", "0", "--eval-every", "3", "--warmup-steps", "0",
                "--no-baseline", "--no-progress", "--projection", "8"]) == 0
    return out


def test_ucr_run_on_the_fused_engine_scores_its_test_split(vowels_run, capsys):
    from rnnkit.train.classify import evaluate, load_run

    capsys.readouterr()
    assert cli(["eval", str(vowels_run), "--test", "ucr:JapaneseVowels", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(lines[-1])
    assert scores["examples"] == 370 and {"accuracy", "f1", "loss"} <= set(scores)
    assert any(line.startswith("accuracy: ") for line in lines)
    summary = json.loads((vowels_run / "summary.json").read_text())
    assert summary["test"]["accuracy"] == pytest.approx(scores["accuracy"])
    run = load_run(vowels_run)
    assert run.kind == "series" and len(run.labels) == 9 and len(run.scaler.mean) == 12
    assert run.model.project.in_features == 12
    from rnnkit.data.ts_files import load_ucr

    test = load_ucr("JapaneseVowels", "test")
    pairs = list(zip(test.series, test.labels, strict=True))
    run.model.rnn.engine = "fused"  # an error if the fused engine could not run this model
    fused = evaluate(run.model, run.batches(pairs))
    assert fused["accuracy"] == pytest.approx(scores["accuracy"])
    run.model.rnn.engine = "reference"
    torch.testing.assert_close(evaluate(run.model, run.batches(pairs))["loss"],
                               fused["loss"], rtol=1e-4, atol=1e-5)


def test_predict_names_series_of_the_test_split(vowels_run, capsys):
    capsys.readouterr()
    assert cli(["predict", str(vowels_run), "ucr:JapaneseVowels:5", "--top", "2",
                "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("ucr:JapaneseVowels:5\t")
    row = json.loads(lines[-1])["predictions"][0]
    assert row["input"] == "ucr:JapaneseVowels:5" and len(row["labels"]) == 2
    assert row["labels"][0][1] >= row["labels"][1][1]
    assert row["true"] == "1"  # the test split starts with speaker 1
    assert cli(["predict", str(vowels_run), "ucr:JapaneseVowels:9999"]) == 2
    assert "index 9999 is past the last series (369)" in capsys.readouterr().err
