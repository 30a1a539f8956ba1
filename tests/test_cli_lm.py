"""Tests for the `rnnkit train lm` and `rnnkit sample` commands, end to end on a tiny config."""

import json

import pytest

from rnnkit.cli import main

TINY_FLAGS = ["--embedding-size", "8", "--hidden-size", "16", "--num-layers", "1",
              "--batch-size", "4", "--seq-len", "8", "--max-steps", "6", "--time-budget", "0",
              "--eval-every", "3", "--eval-batches", "2", "--sample-length", "10",
              "--no-progress", "--backend", "torch"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "text.txt"
    data.write_text("to be or not to be, that is the question.\n" * 30)
    out = tmp / "run"
    assert main(["train", "lm", "--data", str(data), "--out", str(out), *TINY_FLAGS]) == 0
    return out


def test_train_writes_checkpoints_metrics_and_plot(run_dir):
    assert (run_dir / "best" / "model.safetensors").exists()
    assert (run_dir / "loss.png").stat().st_size > 1000
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(3, "train"), (3, "valid"),
                                                      (6, "train"), (6, "valid")]
    assert json.loads((run_dir / "config.json").read_text())["hidden_size"] == 16


def test_sample_with_seed_is_reproducible(run_dir, capsys):
    args = ["sample", str(run_dir), "--prompt", "to be", "--length", "40", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("to be") and len(first) == len("to be") + 40 + 1


def test_sample_unknown_prompt_characters(run_dir, capsys):
    assert main(["sample", str(run_dir), "--prompt", "to bé!", "--length", "5"]) == 2
    err = capsys.readouterr().err
    assert "'é'" in err and "--skip-unknown" in err
    assert main(["sample", str(run_dir), "--prompt", "to bé", "--length", "5",
                 "--skip-unknown"]) == 0
    assert capsys.readouterr().out.startswith("to b")


def test_config_file_and_unknown_keys(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hidden_sise": 3}))
    assert main(["train", "lm", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "hidden_sise" in capsys.readouterr().err
    out = tmp_path / "again"
    # a run's own config.json reproduces its settings; flags still override it
    assert main(["train", "lm", "--config", str(run_dir / "config.json"), "--out", str(out),
                 "--max-steps", "3", "--sample-length", "0"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["hidden_size"] == 16 and saved["max_steps"] == 3


def test_resume_flag_continues_a_run(run_dir, tmp_path, capsys):
    out = tmp_path / "resumed"
    base = ["train", "lm", "--config", str(run_dir / "config.json"), "--out", str(out)]
    assert main([*base, "--sample-length", "0"]) == 0
    assert main([*base, "--max-steps", "9", "--resume", "--sample-length", "0"]) == 0
    assert "resumed from" in capsys.readouterr().out
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "valid"] == [3, 6, 9]
