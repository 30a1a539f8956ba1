"""The classification application: data, batches, training end to end, prediction, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data.labeled import (
    LabeledBatches,
    names_by_language,
    read_labeled_tsv,
    split_examples,
)
from rnnkit.data.vocab import Vocabulary
from rnnkit.train.classify import TINY, ClassifyConfig, main, predict
from rnnkit.train.config import config_from_dict


def _tsv(tmp_path, n=120):
    """Words that end in 'a' are class A, in 'o' class O: learnable from the last character."""
    g = torch.Generator().manual_seed(0)
    lines = []
    for i in range(n):
        stem = "".join("bcdfgklmnprst"[int(k)] for k in torch.randint(0, 13, (4,), generator=g))
        label = "A" if i % 2 else "O"
        lines.append(f"{stem}{label.lower()}\t{label}")
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_labeled_tsv_and_errors(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("hello world\tgreeting\n\nbye\tfarewell\n", encoding="utf-8")
    assert read_labeled_tsv(path) == [("hello world", "greeting"), ("bye", "farewell")]
    path.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError,
                       match=r"a.tsv' line 1: expected 2 tab-separated columns \(text<TAB>"):
        read_labeled_tsv(path)


def test_split_is_deterministic_and_disjoint():
    pairs = [(f"name{i}", str(i % 3)) for i in range(500)]
    a, b = split_examples(pairs), split_examples(list(reversed(pairs)))
    assert sorted(a[0]) == sorted(b[0]) and sorted(a[2]) == sorted(b[2])
    assert not {t for t, _ in a[0]} & {t for t, _ in a[1] + a[2]}
    assert 30 < len(a[1]) < 80 and 30 < len(a[2]) < 80


def test_batches_pad_and_reshuffle_per_epoch():
    pairs = [("ab", "x"), ("abcd", "y"), ("a", "x"), ("abc", "y")]
    vocab = Vocabulary.build("abcd", "char")
    batches = LabeledBatches(pairs, vocab, ["x", "y"], batch_size=4, seed=1)
    x, lengths, y = batches.batch(0)
    assert x.shape == (4, 4) and sorted(lengths.tolist()) == [1, 2, 3, 4]
    for b in range(4):
        assert (x[lengths[b]:, b] == 0).all()
    orders = set()
    for epoch in range(6):
        batches.set_epoch(epoch)
        orders.add(tuple(batches.batch(0)[1].tolist()))
    assert len(orders) > 1
    with pytest.raises(ValueError, match="not among the model's 1 classes"):
        LabeledBatches(pairs, vocab, ["x"], batch_size=2)


def test_names_by_language_are_unambiguous():
    pytest.importorskip("faker")
    pairs = names_by_language(("fr_FR", "de_DE", "it_IT"))
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)) > 900
    assert {label for _, label in pairs} == {"fr_FR", "de_DE", "it_IT"}
    with pytest.raises(ValueError, match="fewer than min_names"):
        names_by_language(("fr_FR",), min_names=10_000)


def test_train_end_to_end_learns_and_predicts(tmp_path):
    cfg = config_from_dict(ClassifyConfig, {**TINY, "data": str(_tsv(tmp_path)),
                                            "out": str(tmp_path / "run"), "max_steps": 60,
                                            "eval_every": 30, "lr": 1e-2, "dropout": 0.0})
    summary = main(cfg, log=lambda _: None)
    assert summary["test"]["accuracy"] > 0.9
    assert (tmp_path / "run" / "best" / "model.safetensors").exists()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert any(r["split"] == "valid" and "accuracy" in r for r in rows)
    ranked = predict(tmp_path / "run", ["kmtpa", "kmtpo"], top=2)
    assert [r[0][0] for r in ranked] == ["A", "O"]
    assert abs(sum(p for _, p in ranked[0]) - 1) < 0.5  # top-2 of a 2-class softmax


def test_cli_train_and_classify(tmp_path, capsys):
    data = _tsv(tmp_path)
    run = tmp_path / "run"
    assert cli(["train", "classify", "--data", str(data), "--out", str(run), "--max-steps",
                "4", "--time-budget", "0", "--eval-every", "2", "--no-progress",
                "--hidden-size", "8", "--embedding-size", "4"]) == 0
    capsys.readouterr()
    assert cli(["classify", str(run), "bakta", "--top", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("bakta\t") and line.split("\t")[1].split()[0] in {"A", "O"}
