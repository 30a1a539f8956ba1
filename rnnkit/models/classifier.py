"""SequenceClassifier: many-to-one, a whole sequence to one label (sentiment, series class)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers._regularisers import Dropout
from rnnkit.models._inputs import InputEncoder, length_mask
from rnnkit.models.factory import make_rnn, run_rnn

__all__ = ["SequenceClassifier", "POOLINGS"]

POOLINGS = ("last", "mean", "max")


class SequenceClassifier(nn.Module):
    """Many-to-one: read a sequence, predict one class.

    The recurrent stack's outputs are pooled over time: "last" takes the final state of each
    direction (the forward one at each sequence's last valid step, the reverse one at step 0,
    so padding never leaks in), "mean" and "max" pool the valid steps. A linear layer maps the
    pooled vector to class logits.

    Args:
        num_classes: C.
        vocab_size: tokens in, through an embedding of `input_size`; None for real features.
        input_size: E, or I (the features per step), or the size real features are
            projected to when `feature_size` is given.
        hidden_size, num_layers, cell ("lstm", "gru", "rnn"), bidirectional, dropout: the
            recurrent stack (rnnkit layers).
        pooling: "last", "mean" or "max".
        feature_size: real-valued inputs of this many features per step, mapped to
            `input_size` by a linear layer before the recurrent stack (None: no projection;
            only without a vocabulary).
        **rnn_kwargs: passed to the layer (e.g. engine, recurrent_dropout).

    Shape: x (T, B) ids, (T, B, I) features, or (T, B, feature_size) with a projection;
    lengths (B,) optional -> logits (B, C).

    Example:
        >>> import torch
        >>> model = SequenceClassifier(3, vocab_size=20, input_size=8, hidden_size=16)
        >>> tuple(model(torch.randint(0, 20, (7, 2)), torch.tensor([7, 4])).shape)
        (2, 3)
    """

    def __init__(self, num_classes: int, vocab_size: int | None = None, input_size: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, dropout: float = 0.0, pooling: str = "last",
                 feature_size: int | None = None, **rnn_kwargs: Any) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if feature_size is not None and (vocab_size or feature_size < 1):
            raise ValueError(f"feature_size must be None with a vocabulary (vocab_size="
                             f"{vocab_size}) and >= 1 otherwise, got {feature_size}")
        self.pooling, self.cell = pooling, cell
        self.inputs = InputEncoder(vocab_size, feature_size or input_size)
        self.project = nn.Linear(feature_size, input_size) if feature_size else None
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers, dropout,
                            bidirectional=bidirectional, **rnn_kwargs)
        self.drop = Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The pooled sequence vector (B, D*H)."""
        emb = self.inputs(x)  # (T, B, E) or (T, B, feature_size)
        if self.project is not None:
            emb = self.project(emb)  # (T, B, input_size)
        emb = self.drop(emb)
        out, state = run_rnn(self.rnn, emb, None, lengths)  # (T, B, D*H)
        if self.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            D = 2 if self.rnn.bidirectional else 1
            return torch.cat(list(h[-D:]), dim=-1)  # top layer, every direction
        valid = length_mask(lengths, out.shape[0], out.shape[1]).unsqueeze(-1)  # (T, B, 1)
        if self.pooling == "mean":
            return (out * valid).sum(0) / valid.sum(0)
        return out.masked_fill(~valid, float("-inf")).amax(0)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.drop(self.features(x, lengths)))  # (B, C)

    def loss(self, x: Tensor, y: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Mean cross-entropy of the labels y (B,)."""
        return F.cross_entropy(self(x, lengths), y)
