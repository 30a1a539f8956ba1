"""Layer 'data': vocabularies and tokenizers, checked text readers, corpora, data sets, and
batching for training."""

from rnnkit.data.corpus import default_corpus_files, load_text, split_text
from rnnkit.data.generated import date_pairs, number_pairs, split_days, split_numbers
from rnnkit.data.labeled import LabeledBatches, names_by_language, read_labeled_tsv
from rnnkit.data.music import PianoRollBatches, load_piano_rolls
from rnnkit.data.pairs import (
    PairBatches,
    build_vocab,
    collate_pairs,
    encode_pairs,
    read_pairs,
    write_pairs,
)
from rnnkit.data.quality import DataWarning, choose_level
from rnnkit.data.scan import load_scan
from rnnkit.data.streams import StreamBatches
from rnnkit.data.text_files import read_text_file, read_tsv
from rnnkit.data.vocab import Vocabulary

__all__ = ["Vocabulary", "StreamBatches", "load_text", "split_text", "default_corpus_files",
           "read_pairs", "write_pairs", "build_vocab", "PairBatches", "collate_pairs",
           "encode_pairs", "load_scan", "number_pairs", "date_pairs", "split_numbers",
           "split_days", "read_labeled_tsv", "names_by_language", "LabeledBatches",
           "load_piano_rolls", "PianoRollBatches", "read_text_file", "read_tsv", "choose_level",
           "DataWarning"]
