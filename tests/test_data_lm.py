"""Tests for rnnkit.data: vocabularies, corpora and the truncated-BPTT stream batches."""

from pathlib import Path

import pytest
import torch

from rnnkit.data import StreamBatches, Vocabulary, default_corpus_files, load_text, split_text

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"


def test_char_vocab_round_trip_and_unknown():
    v = Vocabulary.build("hello world\n", level="char")
    assert v.tokens[0] == "<unk>"
    assert v.decode(v.encode("world hello")) == "world hello"
    assert v.encode("hez").tolist()[-1] == 0          # 'z' was never seen
    assert v.unknown("hez€z") == ["z", "€"]
    again = Vocabulary.from_dict(v.to_dict())
    assert again.tokens == v.tokens and again.level == "char"


def test_word_vocab_tokenises_words_symbols_and_newlines():
    v = Vocabulary.build("the cat sat.\nthe dog sat.\n", level="word")
    assert v.tokenize("the cat.\n") == ["the", "cat", ".", "\n"]
    assert v.decode(v.encode("the dog sat .\nthe cat")) == "the dog sat .\nthe cat"
    assert v.tokens[1:5] == ["\n", ".", "sat", "the"]  # all seen twice: ties sort by token
    assert Vocabulary.build("a a a b b c", level="word", max_size=2).tokens == ["<unk>", "a", "b"]


def test_vocab_rejects_bad_level():
    with pytest.raises(ValueError, match="level must be 'char' or 'word', got 'byte'"):
        Vocabulary.build("abc", level="byte")


def test_stream_batches_are_contiguous_streams_shifted_by_one():
    ids = torch.arange(50)
    s = StreamBatches(ids, batch_size=3, seq_len=4)       # 16 tokens per stream
    assert len(s) == 4 and s.num_tokens == 48
    x0, y0 = s.batch(0)
    x1, _ = s.batch(1)
    assert torch.equal(y0, x0 + 1)
    assert x0[:, 1].tolist() == [16, 17, 18, 19]          # stream 1 starts at token 16
    assert x1[0].tolist() == (x0[-1] + 1).tolist()         # chunk 1 continues chunk 0
    with pytest.raises(IndexError, match="batch index 4 out of range"):
        s.batch(4)


def test_stream_batches_error_names_sizes():
    with pytest.raises(ValueError, match="5 tokens are too few for batch_size=4"):
        StreamBatches(torch.arange(5), batch_size=4, seq_len=2)


def test_split_and_load(tmp_path):
    (tmp_path / "b.txt").write_text("world")
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    assert load_text(tmp_path) == "hello\nworld"
    assert load_text(tmp_path, max_chars=7) == "hello\nw"
    assert split_text("0123456789", 0.1) == ("012345678", "9")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text(tmp_path / "nope.txt")


def test_default_corpus_is_the_standard_library():
    files = default_corpus_files()
    names = {f.name for f in files}
    assert {"os.py", "argparse.py"} <= names
    assert not any("site-packages" in f.parts for f in files)
    assert load_text(None, max_chars=1000).__len__() == 1000


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="shared/data is absent")
def test_shakespeare_split_is_first_90_percent():
    text = load_text(SHAKESPEARE)
    train, val = split_text(text, 0.1)
    assert len(text) == 1_115_394
    assert len(train) == 1_003_854 and train + val == text
