"""End-to-end tests of `rnnkit train seq2seq`, `rnnkit translate` and `rnnkit eval`."""

import json
import random

import pytest

from rnnkit.cli import main
from rnnkit.data.pairs import write_pairs
from rnnkit.train.seq2seq import TINY, Seq2SeqConfig, teacher_forcing_ratio
from rnnkit.train.seq2seq import main as train_main

FLAGS = ["--embedding-size", "16", "--hidden-size", "32", "--batch-size", "16",
         "--max-epochs", "0", "--max-steps", "300", "--eval-every", "150", "--lr", "0.01",
         "--eval-examples", "50", "--no-progress", "--backend", "torch", "--threads", "1"]


def _reverse_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = [rng.choice("abcde") for _ in range(rng.randint(1, 5))]
        out.append((" ".join(s), " ".join(reversed(s))))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s2s")
    train = write_pairs(_reverse_pairs(1500, 0), tmp / "train.tsv")
    valid = write_pairs(_reverse_pairs(60, 1), tmp / "valid.tsv")
    out = tmp / "run"
    assert main(["train", "seq2seq", "--train", str(train), "--valid", str(valid),
                 "--out", str(out), "--attention", "general", *FLAGS]) == 0
    return tmp, out


def test_train_reaches_full_accuracy_on_reversal(run):
    _, out = run
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(150, "train"), (150, "valid"),
                                                      (300, "train"), (300, "valid")]
    assert rows[-1]["exact_match"] == 1.0
    assert (out / "best" / "model.safetensors").exists() and (out / "loss.png").exists()


def test_eval_prints_scores_and_appends_a_test_row(run, capsys):
    tmp, out = run
    write_pairs(_reverse_pairs(40, 2), tmp / "test.tsv")
    assert main(["eval", str(out), "--test", str(tmp / "test.tsv"), "--beam", "3"]) == 0
    text = capsys.readouterr().out
    assert "exact match: 100.00%" in text and "BLEU: 100.00" in text
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["split"] == "test" and last["beam"] == 3 and last["token_accuracy"] == 1.0


def test_translate_greedy_beam_nbest_and_attention_plot(run, capsys, tmp_path):
    tmp, out = run
    src = tmp / "in.txt"
    src.write_text("a b c\nd d e a\n")
    assert main(["translate", str(out), "--input", str(src)]) == 0
    assert capsys.readouterr().out == "c b a\na e d d\n"
    assert main(["translate", str(out), "--input", str(src), "--beam", "4", "--n-best", "2",
                 "--plot-attention", str(tmp_path / "att.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].split("\t")[1] == "c b a"
    assert float(lines[0].split("\t")[0]) >= float(lines[1].split("\t")[0])
    assert (tmp_path / "att.png").stat().st_size > 1000


def test_cli_errors_are_reported(run, capsys, tmp_path):
    _, out = run
    assert main(["translate", str(tmp_path), "--input", "x"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["train", "seq2seq", "--out", str(tmp_path / "r"), *FLAGS]) == 2
    assert "train is required: a pairs file (--train PAIRS)" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["linear", "exponential", "inverse_sigmoid"])
def test_scheduled_sampling_decays_from_one_to_the_floor(kind):
    cfg = Seq2SeqConfig(train="x", sampling_schedule=kind, sampling_min=0.05)
    ratios = [teacher_forcing_ratio(cfg, s, 1000) for s in range(0, 2001, 100)]
    assert ratios[0] > 0.9 and ratios[-1] == pytest.approx(0.05, abs=0.05)
    assert all(a >= b for a, b in zip(ratios, ratios[1:], strict=False))
    assert teacher_forcing_ratio(Seq2SeqConfig(train="x", teacher_forcing=0.7), 500, 1000) == 0.7


def test_scheduled_sampling_run_trains(tmp_path):
    train = write_pairs(_reverse_pairs(40, 3), tmp_path / "t.tsv")
    cfg = Seq2SeqConfig(**{**TINY, "train": str(train), "out": str(tmp_path / "r"),
                           "sampling_schedule": "linear", "attention": "none"})
    summary = train_main(cfg, log=lambda s: None)
    assert summary["step"] == 6 and summary["best_val_loss"] < 10
