"""Tests for parallel-pair data: TSV/SCAN reading, vocabularies, batches, SCAN and generators."""

import datetime
import gzip

import pytest
import torch

from rnnkit.data.pairs import (
    BOS,
    EOS,
    PAD,
    PairBatches,
    build_vocab,
    collate_pairs,
    encode_pairs,
    read_pairs,
    write_pairs,
)
from rnnkit.data.scan import DEFAULT_SCAN_ROOT, load_scan, scan_path


def test_read_tsv_and_scan_lines_plain_and_gzipped(tmp_path):
    tsv = write_pairs([("un deux", "1 2"), ("trois", "3")], tmp_path / "p.tsv")
    assert read_pairs(tsv) == [("un deux", "1 2"), ("trois", "3")]
    scan = tmp_path / "s.txt.gz"
    with gzip.open(scan, "wt", encoding="utf-8") as fh:
        fh.write("IN: jump twice OUT: I_JUMP I_JUMP\n\nIN: walk OUT: I_WALK\n")
    assert read_pairs(scan) == [("jump twice", "I_JUMP I_JUMP"), ("walk", "I_WALK")]


def test_bad_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nno tab here\n")
    with pytest.raises(ValueError, match=r"bad.tsv' line 2"):
        read_pairs(bad)
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_pairs(tmp_path / "missing.tsv")


def test_vocab_has_specials_first_and_encodes_both_levels():
    words = build_vocab(["jump twice", "jump"], "word")
    assert words.tokens == ["<unk>", "<pad>", "<s>", "</s>", "jump", "twice"]
    chars = build_vocab(["2024-03-05"], "char")
    assert chars.decode(chars.encode("2024-03-05")) == "2024-03-05"
    assert chars.encode("x").tolist() == [0]


def test_collate_pads_and_wraps_targets():
    items = [(torch.tensor([4, 5, 6]), torch.tensor([7])),
             (torch.tensor([8]), torch.tensor([9, 10]))]
    b = collate_pairs(items)
    assert b.src.t().tolist() == [[4, 5, 6], [8, PAD, PAD]]
    assert b.src_len.tolist() == [3, 1] and b.tgt_len.tolist() == [2, 3]
    assert b.tgt_in.t().tolist() == [[BOS, 7, PAD], [BOS, 9, 10]]
    assert b.tgt_out.t().tolist() == [[7, EOS, PAD], [9, 10, EOS]]


def test_pair_batches_cover_every_pair_once_and_reshuffle_per_epoch():
    items = [(torch.tensor([4] * (1 + i % 7)), torch.tensor([i])) for i in range(23)]
    batches = PairBatches(items, batch_size=4, seed=3, bucket=2)
    assert len(batches) == 6

    def seen() -> list[int]:
        out = []
        for i in range(len(batches)):
            b = batches.batch(i)
            out += [int(t) for t in b.tgt_in[1]]
        return out
    first = seen()
    assert sorted(first) == list(range(23))
    batches.set_epoch(1)
    assert sorted(seen()) == list(range(23)) and seen() != first
    batches.set_epoch(0)
    assert seen() == first


def test_encode_rejects_empty_source():
    v = build_vocab(["a"], "word")
    with pytest.raises(ValueError, match="pair 1 has an empty source"):
        encode_pairs([("a", "a"), ("", "a")], v, v)


@pytest.mark.skipif(not DEFAULT_SCAN_ROOT.exists(), reason="../shared/data/scan is absent")
def test_scan_simple_split_sizes_and_content():
    test = load_scan(DEFAULT_SCAN_ROOT, "simple", "test")
    assert len(test) == 4182
    assert all(t.split()[0].startswith("I_") for _, t in test[:50])
    with pytest.raises(ValueError, match="split must be one of"):
        scan_path(DEFAULT_SCAN_ROOT, "jump")


def test_number_pairs_french_and_reverse_with_disjoint_splits():
    pytest.importorskip("num2words")
    from rnnkit.data.generated import number_pairs, split_numbers
    assert number_pairs([21, 80, 1001], "fr") == [("vingt et un", "21"),
                                                  ("quatre-vingts", "80"), ("mille un", "1001")]
    assert number_pairs([7], "en", reverse=True) == [("7", "seven")]
    train, valid, test = split_numbers(1000, 999_999, seed=0)
    assert (len(train), len(valid), len(test)) == (800, 100, 100)
    assert not set(train) & set(test) and not set(valid) & set(test)


def test_date_pairs_are_iso_and_reproducible():
    pytest.importorskip("babel")
    from rnnkit.data.generated import date_pairs, split_days
    train, _, test = split_days(200, seed=1)
    assert not set(train) & set(test)
    pairs = date_pairs(test, seed=2)
    assert pairs == date_pairs(test, seed=2)
    assert [datetime.date.fromisoformat(iso) for _, iso in pairs] == test
    german = date_pairs([datetime.date(2024, 3, 5)], ["de_DE"], formats=["long"])
    assert german == [("5. März 2024", "2024-03-05")]
