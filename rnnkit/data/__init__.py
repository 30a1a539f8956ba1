"""Layer 'data': vocabularies and tokenizers, corpora, and batching for training."""

from rnnkit.data.corpus import default_corpus_files, load_text, split_text
from rnnkit.data.streams import StreamBatches
from rnnkit.data.vocab import Vocabulary

__all__ = ["Vocabulary", "StreamBatches", "load_text", "split_text", "default_corpus_files"]
