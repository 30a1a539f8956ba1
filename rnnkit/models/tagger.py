"""SequenceTagger: aligned many-to-many, one label per step (tagging, NER, per-step series)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers._regularisers import Dropout
from rnnkit.models._inputs import InputEncoder, length_mask
from rnnkit.models._streaming import check_streamable, rnn_step
from rnnkit.models.factory import make_rnn, run_rnn

__all__ = ["SequenceTagger"]


class SequenceTagger(nn.Module):
    """Aligned many-to-many: one class per input step, `y_t = softmax(c + V h_t)`.

    A bidirectional stack (the default) lets each tag depend on the whole sentence, the usual
    choice for part-of-speech and named-entity tagging; outputs past each length are ignored
    by the loss.

    Args:
        num_tags: C.
        vocab_size / input_size / hidden_size / num_layers / cell / dropout: as
            `SequenceClassifier`.
        bidirectional: read both ways (default True).
        ignore_index: target value to skip in the loss (besides the padding).

    Shape: x (T, B) ids or (T, B, I) -> logits (T, B, C).

    Example:
        >>> import torch
        >>> tagger = SequenceTagger(5, vocab_size=20, input_size=8, hidden_size=16)
        >>> tuple(tagger(torch.randint(0, 20, (7, 2))).shape)
        (7, 2, 5)
    """

    def __init__(self, num_tags: int, vocab_size: int | None = None, input_size: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = True, dropout: float = 0.0, ignore_index: int = -100,
                 **rnn_kwargs: Any) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.inputs = InputEncoder(vocab_size, input_size)
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers, dropout,
                            bidirectional=bidirectional, **rnn_kwargs)
        self.drop = Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_tags)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, _ = run_rnn(self.rnn, self.drop(self.inputs(x)), None, lengths)  # (T, B, D*H)
        return self.head(self.drop(out))  # (T, B, C)

    def step(self, x_t: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Tag one step of an unbounded stream: the logits (B, C) of its tag and the new
        state, equal to `forward` on the whole sequence fed one step at a time. Only for a
        unidirectional tagger (`bidirectional=False`): a reverse pass needs the stream's end.

        Shape: x_t (B,) ids or (B, I) features -> logits (B, C); the state (L, B, H) per field.
        """
        check_streamable(self.rnn, "SequenceTagger")
        ids = self.inputs.embedding is not None
        if not isinstance(x_t, Tensor) or x_t.dim() != (1 if ids else 2):
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            want = "(B,) token ids" if ids else f"(B, {self.inputs.input_size})"
            raise ValueError(f"x_t must be one step, {want}, got {got}")
        emb = self.inputs(x_t.unsqueeze(0))[0]  # (B, E): the encoder checks ids / features
        out, state = rnn_step(self.rnn, self.drop(emb), state, "SequenceTagger")  # (B, H)
        return self.head(self.drop(out)), state  # (B, C)

    def loss(self, x: Tensor, y: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Cross-entropy averaged over the valid steps of y (T, B)."""
        logits = self(x, lengths)
        valid = length_mask(lengths, y.shape[0], y.shape[1]).to(y.device)
        target = y.masked_fill(~valid, self.ignore_index)
        return F.cross_entropy(logits.flatten(0, 1), target.flatten(),
                               ignore_index=self.ignore_index)

    def predict(self, x: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
        """The best tag per valid step, one list per sequence."""
        tags = self(x, lengths).argmax(-1)  # (T, B)
        T, B = tags.shape
        n = [T] * B if lengths is None else lengths.tolist()
        return [tags[: n[b], b].tolist() for b in range(B)]
