"""WordCharTagger: a bidirectional tagger of tokens from word embeddings and a character-level
encoder of each word, with a softmax or CRF output (named entities, part-of-speech tags)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers._regularisers import Dropout
from rnnkit.models.crf import CRF
from rnnkit.models.factory import make_rnn, run_rnn

__all__ = ["WordCharTagger", "INPUTS"]

INPUTS = ("both", "word", "char")


class WordCharTagger(nn.Module):
    """Aligned many-to-many over tokens: each token's vector is its word embedding and/or the
    final states of a small bidirectional RNN over its characters (both directions
    concatenated); a bidirectional RNN over the sentence reads those, and a linear layer gives
    each token's tag scores, decoded per token (softmax) or jointly (CRF, Viterbi).

    `SequenceTagger` takes one id or feature per step and streams; this model needs the
    characters of every word as a second input, so it is a model of its own.

    Args:
        num_tags: C.
        word_vocab / char_vocab: sizes of the word and character vocabularies (id 0 `<unk>`).
        inputs: "both", "word" (embeddings only) or "char" (character encoder only).
        word_size / char_size: word and character embedding sizes.
        char_hidden: hidden size of the character RNN (per direction).
        hidden_size / num_layers / cell: the sentence RNN (bidirectional).
        dropout: on the token vectors and on the sentence RNN's outputs.
        word_dropout: in training, each word id becomes `<unk>` with this probability, so the
            model learns what to do with unknown words.
        crf: a CRF layer on top (`rnnkit.models.crf.CRF`).

    Shape: words (T, B) ids, chars (W, N) ids of the N = sum(lengths) valid tokens (row-major
        over (t, b)), char_lengths (N,), lengths (B,) -> scores (T, B, C).

    Example:
        >>> import torch
        >>> m = WordCharTagger(4, word_vocab=10, char_vocab=6, word_size=5, char_size=3,
        ...                    char_hidden=4, hidden_size=7)
        >>> lengths = torch.tensor([3, 2])
        >>> chars = torch.randint(1, 6, (4, 5))
        >>> tuple(m(torch.randint(1, 10, (3, 2)), chars, torch.tensor([4, 2, 3, 1, 4]),
        ...         lengths).shape)
        (3, 2, 4)
    """

    def __init__(self, num_tags: int, word_vocab: int, char_vocab: int, inputs: str = "both",
                 word_size: int = 100, char_size: int = 25, char_hidden: int = 25,
                 hidden_size: int = 100, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.5, word_dropout: float = 0.0, crf: bool = True,
                 **rnn_kwargs: Any) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        self.inputs, self.word_dropout = inputs, word_dropout
        size = 0
        self.word_emb = self.char_emb = self.char_rnn = None
        if inputs in ("both", "word"):
            self.word_emb = nn.Embedding(word_vocab, word_size)
            size += word_size
        if inputs in ("both", "char"):
            self.char_emb = nn.Embedding(char_vocab, char_size)
            self.char_rnn = make_rnn(cell, char_size, char_hidden, 1, bidirectional=True,
                                     **rnn_kwargs)
            size += 2 * char_hidden
        self.drop = Dropout(dropout)
        self.rnn = make_rnn(cell, size, hidden_size, num_layers, dropout, bidirectional=True,
                            **rnn_kwargs)
        self.head = nn.Linear(2 * hidden_size, num_tags)
        self.crf = CRF(num_tags) if crf else None

    def _char_vectors(self, chars: Tensor, char_lengths: Tensor) -> Tensor:
        """(N, 2 * char_hidden): each token's forward and backward final character states."""
        _, h = run_rnn(self.char_rnn, self.char_emb(chars), None, char_lengths)  # (W, N, E) in
        h = h[0] if isinstance(h, tuple) else h  # (2, N, Hc): LSTM (h, c) or GRU h
        return torch.cat([h[0], h[1]], dim=-1)

    def forward(self, words: Tensor, chars: Tensor, char_lengths: Tensor, lengths: Tensor
                ) -> Tensor:
        T, B = words.shape
        mask = torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        parts = []
        if self.word_emb is not None:
            ids = words
            if self.training and self.word_dropout:
                drop = torch.rand(words.shape) < self.word_dropout
                ids = words.masked_fill(drop, 0)  # <unk>
            parts.append(self.word_emb(ids))  # (T, B, Ew)
        if self.char_rnn is not None:
            if chars.shape[1] != int(mask.sum()):
                raise ValueError(f"chars has {chars.shape[1]} columns but the sentences "
                                 f"hold {int(mask.sum())} tokens")
            vec = self._char_vectors(chars, char_lengths)  # (N, 2Hc)
            grid = vec.new_zeros(T, B, vec.shape[1])
            grid[mask] = vec  # row-major over (t, b), as TagBatches lays them out
            parts.append(grid)
        x = self.drop(torch.cat(parts, dim=-1))  # (T, B, I)
        out, _ = run_rnn(self.rnn, x, None, lengths)  # (T, B, 2H)
        return self.head(self.drop(out))  # (T, B, C)

    def loss(self, words: Tensor, chars: Tensor, char_lengths: Tensor, lengths: Tensor,
             tags: Tensor) -> Tensor:
        """Per token: the CRF's negative log-likelihood summed over sentences and divided
        by the number of tokens, or the mean cross-entropy."""
        scores = self(words, chars, char_lengths, lengths)
        mask = torch.arange(scores.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)
        if self.crf is not None:
            return self.crf.nll(scores, tags, mask).sum() / mask.sum()
        return F.cross_entropy(scores[mask], tags[mask])

    @torch.no_grad()
    def predict(self, words: Tensor, chars: Tensor, char_lengths: Tensor, lengths: Tensor
                ) -> list[list[int]]:
        """The tag ids of each sentence: Viterbi with a CRF, else the best tag per token."""
        scores = self(words, chars, char_lengths, lengths)
        mask = torch.arange(scores.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)
        if self.crf is not None:
            return self.crf.decode(scores, mask)
        best = scores.argmax(-1)  # (T, B)
        return [best[: int(n), b].tolist() for b, n in enumerate(lengths)]
