"""Tagging scores: spans read conlleval's way, exact-match precision / recall / F1 (overall and
per type) and token accuracy, on small cases whose answers are worked out by hand below."""

from __future__ import annotations

import pytest

from rnnkit.train.tag_metrics import span_scores, spans, tag_scores, token_accuracy


def test_spans_bio():
    assert spans(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    # two B- in a row are two spans; a span may end the sentence
    assert spans(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 1, 3)]
    assert spans(["O", "O"]) == []
    assert spans([]) == []


def test_spans_i_without_b_starts_a_span():
    # conlleval: an I- after O, at the start, or after another type opens a new span
    assert spans(["I-PER", "I-PER"]) == [("PER", 0, 2)]
    assert spans(["O", "I-LOC", "O"]) == [("LOC", 1, 2)]
    assert spans(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    # hyphens inside a type name stay in the type
    assert spans(["B-geo-loc", "I-geo-loc"]) == [("geo-loc", 0, 2)]


def test_spans_bioes_and_plain_tags():
    assert spans(["S-PER", "B-LOC", "E-LOC", "I-LOC"]) == [
        ("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4)]
    # plain tags (part of speech): every token other than O is its own span
    assert spans(["DT", "NN", "NN", "O"]) == [("DT", 0, 1), ("NN", 1, 2), ("NN", 2, 3)]


def test_span_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"],
            ["O", "B-ORG", "I-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-PER"],   # PER(0,2) right; PER(3,4) wrong type
            ["O", "B-ORG", "I-ORG", "O"]]       # ORG(1,3) ends early: wrong
    # gold spans: PER(0,2), LOC(3,4), ORG(1,4) -> 3;  predicted: PER(0,2), PER(3,4), ORG(1,3)
    # -> 3;  exact matches: PER(0,2) -> 1.  precision 1/3, recall 1/3, F1 1/3
    s = span_scores(gold, pred)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(1 / 3)
    # PER: gold 1, predicted 2, right 1 -> P 1/2, R 1, F1 2*(1/2)/(3/2) = 2/3
    assert s["per_type"]["PER"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    # LOC: gold 1, predicted 0 -> P 0 (nothing predicted), R 0, F1 0
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["per_type"]["ORG"]["f1"] == 0.0


def test_unequal_precision_and_recall_by_hand():
    gold = [["B-A", "O", "B-B", "O", "B-A", "I-A"]]   # A(0,1) B(2,3) A(4,6): 3 spans
    pred = [["B-A", "O", "I-B", "O", "O", "O"]]       # A(0,1) B(2,3): 2 spans, both right
    # precision 2/2 = 1, recall 2/3, F1 = 2 * 1 * (2/3) / (1 + 2/3) = 4/5
    s = tag_scores(gold, pred)
    assert (s["precision"], s["recall"]) == (1.0, pytest.approx(2 / 3))
    assert s["f1"] == pytest.approx(0.8)
    # tokens: positions 4 and 5 differ, 2 is I-B for B-B -> 3 of 6 right
    assert s["accuracy"] == pytest.approx(0.5)


def test_token_accuracy_and_errors():
    assert token_accuracy([["O", "B-X"], ["O"]], [["O", "O"], ["O"]]) == pytest.approx(2 / 3)
    assert token_accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        token_accuracy([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="1 gold sentences but 2 predicted"):
        span_scores([["O"]], [["O"], ["O"]])
