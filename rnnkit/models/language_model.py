"""LanguageModel: token embedding -> stacked RNN / LSTM / GRU -> linear decoder over the vocab."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers._regularisers import Dropout
from rnnkit.models._streaming import rnn_step
from rnnkit.models.factory import make_rnn

__all__ = ["LanguageModel", "State"]

State = Any  # the recurrent layer's state: (h, c) for LSTM, h for GRU / RNN, each (L, B, H)


class LanguageModel(nn.Module):
    """Next-token model: `p(x_{t+1} | x_1..x_t) = softmax(c + V h_t)`.

    Embedding -> dropout -> stacked recurrent layer (dropout between layers) -> dropout ->
    decoder. With `tie_weights` the decoder reuses the embedding matrix (needs
    `embedding_size == hidden_size`).

    Args:
        vocab_size: V.
        embedding_size: E, the size of each token's input vector.
        hidden_size: H.
        num_layers: L.
        cell: "lstm", "gru" or "rnn".
        dropout: dropout probability on the embeddings, between layers and on the output.
        tie_weights: share the decoder's weight with the embedding.
        backend: "auto", "rnnkit" or "torch" (see `make_rnn`).

    Shape:
        x: (T, B) token ids. Returns logits (T, B, V) and the final state.

    Example:
        >>> m = LanguageModel(vocab_size=7, embedding_size=4, hidden_size=5, backend="torch")
        >>> logits, state = m(torch.zeros(3, 2, dtype=torch.long))
        >>> tuple(logits.shape)
        (3, 2, 7)
    """

    def __init__(self, vocab_size: int, embedding_size: int = 128, hidden_size: int = 256,
                 num_layers: int = 2, cell: str = "lstm", dropout: float = 0.0,
                 tie_weights: bool = False, backend: str = "auto") -> None:
        super().__init__()
        if tie_weights and embedding_size != hidden_size:
            raise ValueError(f"tie_weights needs embedding_size == hidden_size, got "
                             f"embedding_size={embedding_size}, hidden_size={hidden_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.args = dict(vocab_size=vocab_size, embedding_size=embedding_size,
                         hidden_size=hidden_size, num_layers=num_layers, cell=cell,
                         dropout=dropout, tie_weights=tie_weights, backend=backend)
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.drop = Dropout(dropout)
        self.rnn = make_rnn(cell, embedding_size, hidden_size, num_layers, dropout, backend)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def config(self) -> dict:
        """Constructor arguments, JSON-ready: `LanguageModel(**m.config())` rebuilds the model."""
        return dict(self.args)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        emb = self.drop(self.embedding(x))                 # (T, B, E)
        out, state = self.rnn(emb, state)                  # (T, B, H)
        return self.decoder(self.drop(out)), state         # (T, B, V)

    def step(self, token: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One token of an unbounded stream: the logits for the next token and the new state.

        Feeding a stream token by token, each call's state into the next, gives the logits
        `forward` gives on the whole sequence, in memory that does not grow with the stream
        (under `torch.no_grad()`, or with the state detached between calls).

        Shape: token (B,) ids (or a 0-d id, unbatched) -> logits (B, V) (or (V,)); the state
        as in `forward`, (L, B, H) per field.

        Example:
            >>> m = LanguageModel(vocab_size=7, embedding_size=4, hidden_size=5).eval()
            >>> with torch.no_grad():
            ...     logits, state = m.step(torch.tensor([1, 2]))
            ...     logits, state = m.step(logits.argmax(-1), state)
            >>> tuple(logits.shape)
            (2, 7)
        """
        if not isinstance(token, Tensor) or token.dim() > 1 or token.is_floating_point():
            got = (f"{tuple(token.shape)} {token.dtype}" if isinstance(token, Tensor)
                   else type(token).__name__)
            raise ValueError(f"token must be one step of token ids, (B,) or 0-d integers, "
                             f"got {got}")
        out, state = rnn_step(self.rnn, self.drop(self.embedding(token)), state,
                              "LanguageModel")            # (B, H)
        return self.decoder(self.drop(out)), state         # (B, V)

    def loss(self, x: Tensor, y: Tensor, state: State | None = None,
             teacher_forcing: float = 1.0,
             generator: torch.Generator | None = None) -> tuple[Tensor, State]:
        """Cross-entropy in nats averaged over every time step and stream, and the final state.

        With `teacher_forcing < 1` (scheduled sampling) the input at step t > 0 is, with
        probability `1 - teacher_forcing`, the model's own prediction at step t-1 (sampled from
        its softmax) instead of the ground truth; this runs step by step and is much slower.
        """
        if teacher_forcing >= 1.0:
            logits, state = self(x, state)                 # (T, B, V)
            return F.cross_entropy(logits.flatten(0, 1), y.flatten()), state
        steps = []
        inp = x[0]                                         # (B,)
        for t in range(x.shape[0]):
            logits, state = self(inp.unsqueeze(0), state)  # (1, B, V)
            steps.append(logits[0])
            if t + 1 < x.shape[0]:
                with torch.no_grad():
                    own = torch.multinomial(F.softmax(logits[0], -1), 1, generator=generator)[:, 0]
                    keep = torch.rand(x.shape[1], generator=generator) < teacher_forcing
                inp = torch.where(keep, x[t + 1], own)
        logits = torch.stack(steps)                        # (T, B, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()), state
