"""The ListOps depth experiment: token and depth helpers, test sets that are fixed and disjoint
from training, and each model trained end to end through `rnnkit lab listops` (tiny config)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rnnkit.cli import main
from rnnkit.lab.listops import (
    CLOSE,
    TINY,
    ListOpsConfig,
    ListOpsModel,
    build_data,
    depth,
    depth_test_sets,
    in_test_bucket,
    to_text,
    to_tokens,
)
from rnnkit.layers.tree import Tree

_EXPR = Tree(10, [Tree(3), Tree(12, [Tree(4), Tree(5)]), Tree(7)])  # MAX(3, SM(4, 5), 7) = 9


def test_tokens_text_and_depth():
    assert to_tokens(_EXPR) == [10, 3, 12, 4, 5, CLOSE, 7, CLOSE]
    assert to_text(_EXPR) == "[MAX 3 [SM 4 5 ] 7 ]"
    assert [depth(Tree(1)), depth(Tree(11, [Tree(1), Tree(2)])), depth(_EXPR)] == [0, 1, 2]


def test_test_sets_are_fixed_exact_depth_and_disjoint_from_training():
    small = dict(train_size=3000, valid_size=200, test_size=200, test_depth=5)
    a = build_data(ListOpsConfig(**small, seed=1))
    b = build_data(ListOpsConfig(**small, seed=2))
    assert [to_text(t) for t, _ in a.train] != [to_text(t) for t, _ in b.train]
    for d in range(1, 6):  # the same test sets whatever the training seed
        assert [to_text(t) for t, _ in a.tests[d]] == [to_text(t) for t, _ in b.tests[d]]
        assert all(depth(t) == d for t, _ in a.tests[d])
    seen = {to_text(t) for t, _ in a.train + a.valid}
    assert {depth(t) for t, _ in a.train} == {1, 2, 3}
    held_out = {to_text(t) for d in a.tests for t, _ in a.tests[d]}
    assert not seen & held_out
    assert not any(in_test_bucket(s) for s in seen)
    assert sum(in_test_bucket(to_text(t)) for t, _ in a.tests[1]) == 200
    rng = random.Random(0)  # the bucket is about a tenth of all expressions
    share = sum(in_test_bucket(str(rng.random())) for _ in range(5000)) / 5000
    assert 0.08 < share < 0.12


@pytest.mark.parametrize("kind", ["tree-lstm", "binary-tree-lstm", "lstm"])
def test_models_give_one_prediction_per_expression(kind):
    model = ListOpsModel(kind, 4, 6)
    items = [t for t, _ in depth_test_sets(ListOpsConfig(test_size=3, test_depth=3))[3]]
    logits = model(model.collate([model.prepare(t) for t in items]))
    assert logits.shape == (3, 10)
    one = model(model.collate([model.prepare(items[1])]))  # batching does not mix expressions
    torch.testing.assert_close(logits[1:2], one, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["tree-lstm", "binary-tree-lstm", "lstm"])
def test_listops_command_trains_tests_and_tables(kind, tmp_path, capsys):
    run = tmp_path / kind
    assert main(["lab", "listops", "--preset", "tiny", "--model", kind, "--out", str(run)]) == 0
    result = json.loads((run / "test.json").read_text())
    assert result["model"] == kind and sorted(result["test_accuracy"]) == ["1", "2", "3", "4"]
    cfg = ListOpsConfig(**{**TINY, "model": kind})
    for d, items in depth_test_sets(cfg).items():  # baseline: the commonest value per set
        counts = [sum(v == k for _, v in items) for k in range(10)]
        assert result["majority_baseline"][str(d)] == max(counts) / len(items)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "valid"} and rows[-1]["step"] == 4
    assert (run / "best" / "model.safetensors").exists()
    assert json.loads((run / "config.json").read_text())["model"] == kind
    capsys.readouterr()
    table = tmp_path / "table.md"
    assert main(["lab", "listops-table", str(run), "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    text = table.read_text()
    assert text in printed and f"| depth | majority class | {kind} ({kind}) |" in text
    assert "| 4 (unseen) |" in text
    (run / "test.json").unlink()  # without test.json, the table tests the checkpoint itself
    assert main(["lab", "listops-table", str(run), "--out", str(table)]) == 0
    def depth_rows(t: str) -> list[str]:
        return [line for line in t.splitlines() if line[:4] in ("| 1 ", "| 2 ", "| 3 ", "| 4 ")]

    assert len(depth_rows(text)) == 4 and depth_rows(table.read_text()) == depth_rows(text)


def test_budget_flag_and_errors(tmp_path, capsys):
    from rnnkit.cli import build_parser

    args = build_parser().parse_args(["lab", "listops", "--budget", "2.5"])
    assert args.time_budget == 2.5
    assert main(["lab", "listops-table", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["lab", "listops-table", str(tmp_path / "empty")]) == 2
    assert "has no checkpoint" in capsys.readouterr().err
    assert main(["lab", "listops", "--preset", "tiny", "--model", "gru",
                 "--out", str(tmp_path / "r")]) == 2
    assert main(["lab", "listops", "--preset", "tiny", "--test-depth", "2",
                 "--out", str(tmp_path / "r")]) == 2
    assert "test_depth (2) must be >= train_depth (3)" in capsys.readouterr().err
