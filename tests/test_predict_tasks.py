"""`rnnkit predict` on language-model, seq2seq, forecasting and music runs, end to end on the
fused engine: each trains a tiny run through the CLI and checks predict against the task's own
command or model (`rnnkit sample`, `rnnkit translate`, `Forecaster`, `PianoRollModel`)."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from rnnkit.cli import main as cli


def _last_json(capsys) -> list[dict]:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])["predictions"]


def _one_line_error(capsys, argv: list[str], expected: str) -> None:
    capsys.readouterr()
    assert cli(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, (argv, err)


def test_language_model_continues_prompts_as_sample_does(ext, tmp_path, capsys):
    data = tmp_path / "text.txt"
    data.write_text("to be or not to be, that is the question.\n" * 30)
    run = str(tmp_path / "run")
    assert cli(["train", "lm", "--data", str(data), "--out", run, "--embedding-size", "8",
                "--hidden-size", "16", "--batch-size", "4", "--seq-len", "8", "--max-steps",
                "6", "--time-budget", "0", "--eval-every", "3", "--eval-batches", "2",
                "--sample-length", "10", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli(["predict", run, "to be", "not", "--length", "30", "--seed", "3",
                "--json"]) == 0
    rows = _last_json(capsys)
    assert [r["input"] for r in rows] == ["to be", "not"]
    assert all(len(r["output"]) == 30 for r in rows)  # characters
    # prompt n is sampled with seed + n, as `rnnkit sample` does with that seed
    for n, row in enumerate(rows):
        assert cli(["sample", run, "--prompt", row["input"], "--length", "30", "--seed",
                    str(3 + n), "--temperature", "0.8"]) == 0
        assert capsys.readouterr().out == row["input"] + row["output"] + "\n"
    _one_line_error(capsys, ["predict", run, "to bé"], "never saw in training")
    _one_line_error(capsys, ["predict", run, "x", "--top-p", "0"], "--top-p must be in (0, 1]")


def _reverse_pairs(n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        s = [rng.choice("abcde") for _ in range(rng.randint(1, 5))]
        lines.append(" ".join(s) + "\t" + " ".join(reversed(s)))
    return "\n".join(lines) + "\n"


def test_seq2seq_decodes_source_lines_as_translate_does(ext, tmp_path, capsys):
    (tmp_path / "train.tsv").write_text(_reverse_pairs(600, 0))
    (tmp_path / "valid.tsv").write_text(_reverse_pairs(30, 1))
    run = str(tmp_path / "run")
    assert cli(["train", "seq2seq", "--train", str(tmp_path / "train.tsv"), "--valid",
                str(tmp_path / "valid.tsv"), "--out", run, "--embedding-size", "16",
                "--hidden-size", "32", "--batch-size", "16", "--max-epochs", "0",
                "--max-steps", "120", "--eval-every", "120", "--lr", "0.01",
                "--eval-examples", "20", "--no-progress", "--threads", "1"]) == 0
    sources = ["a b c", "d d e a"]
    (tmp_path / "in.txt").write_text("\n".join(sources) + "\n")
    for flags in ([], ["--beam", "3", "--n-best", "2"]):
        capsys.readouterr()
        assert cli(["translate", run, "--input", str(tmp_path / "in.txt"), *flags]) == 0
        expected = capsys.readouterr().out.splitlines()
        assert cli(["predict", run, *sources, "--json", *flags]) == 0
        out = capsys.readouterr().out.strip().splitlines()
        rows = json.loads(out[-1])["predictions"]
        assert [r["input"] for r in rows] == sources
        if not flags:
            assert [r["output"] for r in rows] == expected
            assert out[0].split("\t")[:2] == [sources[0], rows[0]["output"]]
        else:  # translate prints "score<TAB>output" for each of the n best
            assert [[t for t, _ in r["n_best"]] for r in rows] == \
                [[line.split("\t")[1] for line in expected[i:i + 2]] for i in (0, 2)]
            assert all(r["n_best"][0][1] >= r["n_best"][1][1] for r in rows)
    _one_line_error(capsys, ["predict", run, "a", "--beam", "2", "--n-best", "3"],
                    "--n-best must be in [1, --beam=2]")
    _one_line_error(capsys, ["predict", run, "a", "--beam", "2", "--temperature", "1"],
                    "needs --beam 1")


def _csv(path, values):
    path.write_text("date,y\n" + "".join(f"d{i},{v:.6f}\n" for i, v in enumerate(values)))
    return path


def test_forecaster_forecasts_after_the_last_row_of_a_csv(ext, tmp_path, capsys):
    from rnnkit.train.forecast import load_run, to_features

    t = np.arange(80)
    values = 10 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 6)
    data = _csv(tmp_path / "s.csv", values)
    run = str(tmp_path / "run")
    assert cli(["train", "forecast", "--data", str(data), "--column", "y", "--preset", "tiny",
                "--out", run]) == 0  # tiny: window 8, horizon 4, direct
    recent = _csv(tmp_path / "recent.csv", values[50:70])
    capsys.readouterr()
    assert cli(["predict", run, str(recent), str(data), "--json"]) == 0
    rows = _last_json(capsys)
    assert [len(r["forecast"]) for r in rows] == [4, 4]
    # by hand: the model reads the last 8 rows of each file, its output unscaled
    model, cfg, _ = load_run(run)
    for row, part in zip(rows, (values[50:70], values), strict=True):
        feats = to_features(part, np.zeros((len(part), 0)), "none")[-8:]  # (8, 1)
        with torch.no_grad():
            expected = model.forecast(feats.unsqueeze(1), 4)[0, :, 0].double().numpy()
        assert np.allclose(row["forecast"], expected, atol=1e-5)
    assert rows[0]["forecast"] != rows[1]["forecast"]
    # --steps 3 of a direct model: the first 3 of the same H values
    assert cli(["predict", run, str(recent), "--steps", "3", "--json"]) == 0
    assert _last_json(capsys)[0]["forecast"] == rows[0]["forecast"][:3]
    short = _csv(tmp_path / "short.csv", values[:5])
    _one_line_error(capsys, ["predict", run, str(short)], "fewer than the window 8")
    _one_line_error(capsys, ["predict", run, str(tmp_path / "none.csv")], "no such file")


def test_music_continues_a_prime_as_the_model_generates(ext, tmp_path, capsys):
    from test_music import _mat

    from rnnkit.train.music import load_music_model

    run = str(tmp_path / "run")
    assert cli(["train", "music", "--data", str(_mat(tmp_path)), "--out", run,
                "--hidden-size", "16", "--batch-size", "4", "--max-steps", "6",
                "--time-budget", "0", "--eval-every", "3", "--warmup-steps", "0",
                "--no-progress"]) == 0
    capsys.readouterr()
    assert cli(["predict", run, "61,65 65 -", "--length", "5", "--seed", "7", "--json"]) == 0
    (row,) = _last_json(capsys)
    frames = row["output"].split()
    assert len(frames) == 5
    # the same draws from the model itself: key k is MIDI pitch 21 + k
    prime = torch.zeros(3, 88)
    prime[0, 61 - 21] = prime[0, 65 - 21] = prime[1, 65 - 21] = 1
    rolled = load_music_model(run).generate(prime, 5, 1.0, torch.Generator().manual_seed(7))
    assert frames == [",".join(str(21 + int(k)) for k in f.nonzero()[:, 0]) or "-"
                      for f in rolled]
    _one_line_error(capsys, ["predict", run, "61,200"], "frame 1 holds '200'")


def test_unsupported_run_kind_is_a_one_line_error(tmp_path, capsys):
    from rnnkit.train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run" / "best", torch.nn.Linear(2, 2),
                    {"model_class": "SomethingElse", "model_args": {}})
    _one_line_error(capsys, ["predict", str(tmp_path / "run"), "x"],
                    "holds a 'SomethingElse' model; rnnkit predict serves runs of")
