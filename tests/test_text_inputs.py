"""Tests for rnnkit.data.text_files and rnnkit.data.quality: inputs are checked, defaults fit."""

import gzip
import random
import re
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data.corpus import load_text
from rnnkit.data.labeled import read_labeled_tsv
from rnnkit.data.pairs import read_pairs, write_pairs
from rnnkit.data.quality import DataWarning, choose_level
from rnnkit.data.text_files import read_text_file, read_tsv
from rnnkit.train.config import config_from_dict
from rnnkit.train.lm import TINY, LMConfig
from rnnkit.train.lm import main as lm_main
from rnnkit.train.seq2seq import TINY as S2S_TINY
from rnnkit.train.seq2seq import Seq2SeqConfig
from rnnkit.train.seq2seq import main as s2s_main

_ONES = ["ein", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun"]


def _number_words(n: int) -> str:
    """German-style number words written as one word, e.g. 'dreihundertvierundzwanzig'."""
    h, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    parts = [(_ONES[h - 1] + "hundert") if h else "",
             (_ONES[ones - 1] + "und") if ones and tens else (_ONES[ones - 1] if ones else ""),
             (_ONES[tens - 1] + "zig") if tens else ""]
    return "".join(parts) or "null"


def test_binary_files_are_refused_with_the_offset(tmp_path):
    with pytest.raises(ValueError, match=r"'/usr/bin/true' looks binary: a NUL byte at byte "
                                         r"offset \d+ \(line 1\)"):
        load_text("/usr/bin/true")
    data = tmp_path / "d"
    data.mkdir()
    (data / "a.txt").write_text("fine text\n")
    (data / "b.txt").write_bytes(b"line one\nline\x00two\n")
    with pytest.raises(ValueError, match=r"b.txt' looks binary: a NUL byte at byte offset 13 "
                                         r"\(line 2\)"):
        load_text(data)


def test_latin1_is_refused_as_utf8_and_read_with_encoding(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 au lait\nna\u00efve\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"not valid utf-8 at byte offset 3 \(line 1\): byte "
                                         r"0xe9; pass its encoding with --encoding"):
        load_text(path)
    assert load_text(path, encoding="latin-1") == "caf\u00e9 au lait\nna\u00efve\n"
    with pytest.raises(ValueError, match="encoding 'latin-9000' is not a known"):
        read_text_file(path, "latin-9000")
    with pytest.raises(ValueError, match="encoding 'klingon' is not a known"):
        config_from_dict(LMConfig, {"encoding": "klingon"})


def test_utf16_with_its_encoding_and_a_bom_dropped(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_text("h\u00e9llo\n", encoding="utf-16")
    assert read_text_file(path, "utf-16") == "h\u00e9llo\n"
    with pytest.raises(ValueError, match="looks binary"):
        read_text_file(path)
    path.write_bytes(b"\xef\xbb\xbfhi\n")
    assert read_text_file(path) == "hi\n"


def test_max_chars_must_not_be_negative(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij")
    assert load_text(path, max_chars=4) == "abcd"
    with pytest.raises(ValueError, match="max_chars must be an int >= 0"):
        load_text(path, max_chars=-5)


def test_tsv_lines_with_the_wrong_number_of_columns_are_refused(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("a b\tb a\nx\ty\tz\n")
    with pytest.raises(ValueError, match=r"p.tsv' line 2: expected 2 tab-separated columns "
                                         r"\(source<TAB>target\), got 3"):
        read_pairs(path)
    with pytest.raises(ValueError, match=r"p.tsv' line 2: expected 2 tab-separated columns "
                                         r"\(text<TAB>label\), got 3"):
        read_labeled_tsv(path)
    path.write_text("x\ty\tz\n\n\r\nu\tv\tw\r\n")
    assert read_tsv(path, 3, "a<TAB>b<TAB>c") == [(1, ["x", "y", "z"]), (4, ["u", "v", "w"])]
    gz = tmp_path / "p.tsv.gz"
    gz.write_bytes(gzip.compress(b"a\tb\n"))
    assert read_pairs(gz) == [("a", "b")]
    bad = tmp_path / "q.tsv.gz"
    shutil.copy(path, bad)
    with pytest.raises(ValueError, match="ends in .gz but is not valid gzip"):
        read_pairs(bad)


def test_choose_level_words_repeat_numbers_do_not():
    assert choose_level(["jump twice", "walk left", "jump left twice", "walk"] * 3) == "word"
    nums = random.Random(0).sample(range(1, 1000), 300)
    assert choose_level([_number_words(n) for n in nums]) == "char"
    assert choose_level([str(n) for n in nums]) == "char"
    assert choose_level(["twenty one", "thirty one", "twenty two", "thirty two"] * 2) == "word"


def _number_pairs(tmp_path):
    nums = random.Random(1).sample(range(1, 1000), 400)
    return write_pairs([(_number_words(n), str(n)) for n in nums], tmp_path / "nums.tsv")


def test_seq2seq_auto_level_picks_characters_for_number_words(tmp_path):
    train = _number_pairs(tmp_path)
    notes = []
    cfg = config_from_dict(Seq2SeqConfig, {**S2S_TINY, "train": str(train),
                                           "out": str(tmp_path / "run")})
    assert cfg.level == "auto"
    s2s_main(cfg, log=notes.append)
    data_line = next(n for n in notes if n.startswith("data:"))
    assert "(char) ->" in data_line and data_line.endswith("(char)")


def test_word_level_on_number_words_warns(tmp_path):
    train = _number_pairs(tmp_path)
    cfg = config_from_dict(Seq2SeqConfig, {**S2S_TINY, "train": str(train), "level": "word",
                                           "out": str(tmp_path / "run")})
    with pytest.warns(DataWarning) as record:
        s2s_main(cfg, log=lambda s: None)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("the source vocabulary (word level): ") and "occur only once" in m
               and "--src-level char" in m for m in messages)
    assert any(m.startswith("the validation sources (word level): 100% of its tokens are not "
                            "in the vocabulary") for m in messages)


def test_lm_word_level_on_unrepeated_words_warns(tmp_path):
    data = tmp_path / "t.txt"
    data.write_text(" ".join(f"w{i}" for i in range(3000)) + "\n")
    cfg = config_from_dict(LMConfig, {**TINY, "data": str(data), "level": "word",
                                      "out": str(tmp_path / "run"), "sample_length": 0})
    with pytest.warns(DataWarning) as record:
        lm_main(cfg, log=lambda s: None)
    messages = [str(w.message) for w in record]
    assert re.match(r"the word vocabulary: 2,7\d\d of its 2,7\d\d tokens occur only once",
                    messages[0])
    assert messages[1].startswith("the validation text: 100% of its tokens are not in the "
                                  "vocabulary")


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_read_as_text_or_refused_in_one_line(tmp_path, raw):
    """Fuzz: whatever the bytes, the checked readers return text/pairs or raise ValueError
    with a one-line message naming the file; never another exception, never U+FFFD."""
    path = tmp_path / "fuzz.tsv"
    path.write_bytes(raw)
    for read in (read_text_file, read_pairs, read_labeled_tsv):
        try:
            result = read(path)
        except ValueError as err:
            assert "fuzz.tsv" in str(err) and "\n" not in str(err)
        else:
            assert "\ufffd" not in repr(result) or "\ufffd".encode() in raw
