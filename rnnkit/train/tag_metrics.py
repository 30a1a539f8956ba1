"""Scores of a tagger: entity spans by exact match (precision, recall, F1, per type) and token
accuracy, with conlleval's reading of chunk tags.

Tags are `B-TYPE`, `I-TYPE` (BIO / IOB2; also `E-TYPE` and `S-TYPE` of BIOES) or `O`. As in
conlleval, an `I-` that does not continue a span of its own type (after `O`, after another
type, or at the start of a sentence) starts a new span. A tag with none of these prefixes
(a part-of-speech tag, say) is a span of one token of its own type, so on plain tags the
span scores are per-token scores over the tags other than `O`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["spans", "span_scores", "token_accuracy", "tag_scores"]

_PREFIXES = ("B", "I", "E", "S")


def _split(tag: str) -> tuple[str, str]:
    """(prefix, type): 'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); 'NN' -> ('S', 'NN')."""
    if tag == "O":
        return "O", ""
    head, sep, rest = tag.partition("-")
    if sep and head in _PREFIXES and rest:
        return head, rest
    return "S", tag


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The spans of one sentence's tags as (type, start, end), end exclusive, in order.

    Example:
        >>> spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"])
        [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5), ('PER', 5, 6)]
    """
    out = []
    start, kind = None, ""  # the open span, if any
    prev = "O"
    for i, tag in enumerate(tags):
        prefix, typ = _split(tag)
        continues = (start is not None and typ == kind and prefix in ("I", "E")
                     and prev in ("B", "I"))
        if start is not None and not continues:
            out.append((kind, start, i))
            start = None
        if prefix != "O" and start is None:
            start, kind = i, typ
        if start is not None and prefix in ("E", "S"):  # these close their span here
            out.append((kind, start, i + 1))
            start = None
        prev = prefix
    if start is not None:
        out.append((kind, start, len(tags)))
    return out


def _prf(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _check(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
                ) -> dict[str, Any]:
    """Micro precision, recall and F1 of exact span matches (type, start and end equal), and
    the same per type with `support` (the gold spans of that type) under `per_type`.

    Example:
        >>> s = span_scores([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
        >>> s["precision"], s["recall"], s["f1"]
        (0.0, 0.0, 0.0)
    """
    _check(gold, pred)
    tp: Counter[str] = Counter()
    n_true: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(spans(g)), set(spans(p))
        n_true.update(s[0] for s in gs)
        n_pred.update(s[0] for s in ps)
        tp.update(s[0] for s in gs & ps)
    scores: dict[str, Any] = _prf(sum(tp.values()), sum(n_pred.values()),
                                  sum(n_true.values()))
    scores["per_type"] = {t: {**_prf(tp[t], n_pred[t], n_true[t]), "support": n_true[t]}
                          for t in sorted(set(n_true) | set(n_pred))}
    return scores


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """The fraction of tokens whose predicted tag equals the gold tag (0 with no tokens)."""
    _check(gold, pred)
    total = sum(len(g) for g in gold)
    right = sum(a == b for g, p in zip(gold, pred, strict=True)
                for a, b in zip(g, p, strict=True))
    return right / total if total else 0.0


def tag_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
               ) -> dict[str, Any]:
    """`precision`, `recall`, `f1` (entity spans), `accuracy` (tokens) and `per_type`."""
    scores = span_scores(gold, pred)
    per_type = scores.pop("per_type")
    return {**scores, "accuracy": token_accuracy(gold, pred), "per_type": per_type}
