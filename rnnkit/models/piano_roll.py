"""PianoRollModel: next-frame model of polyphonic music, each key an independent Bernoulli."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers._regularisers import Dropout
from rnnkit.models._streaming import rnn_step
from rnnkit.models.factory import make_rnn, run_rnn

__all__ = ["PianoRollModel"]


class PianoRollModel(nn.Module):
    """p(x_{t+1} | x_1..x_t) = prod_k Bernoulli(x_{t+1,k}; sigmoid(c + V h_t)_k).

    The recurrent state summarises the music so far; given it, the 88 keys of the next frame
    are independent. The loss is the negative log-likelihood of a frame in nats (summed over
    the keys), averaged over the frames of every piece: the measure of the polyphonic-music
    literature (Boulanger-Lewandowski et al. 2012; Bai et al. 2018).

    Args:
        num_keys: K (88 for a piano).
        hidden_size, num_layers, cell, dropout: the recurrent stack (rnnkit layers).

    Shape: x (T, B, K) 0/1 frames -> logits (T, B, K).

    Example:
        >>> import torch
        >>> model = PianoRollModel(hidden_size=16)
        >>> tuple(model(torch.zeros(5, 2, 88)).shape)
        (5, 2, 88)
    """

    def __init__(self, num_keys: int = 88, hidden_size: int = 256, num_layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0, **rnn_kwargs: Any) -> None:
        super().__init__()
        self.num_keys = num_keys
        self.rnn = make_rnn(cell, num_keys, hidden_size, num_layers, dropout, **rnn_kwargs)
        self.drop = Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_keys)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: Any = None
                ) -> Tensor:
        out, _ = run_rnn(self.rnn, x, state, lengths)  # (T, B, H)
        return self.head(self.drop(out))  # (T, B, K)

    def step(self, frame: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One frame of an unbounded stream: the logits of the next frame and the new state,
        equal to `forward` on the whole sequence fed one frame at a time.

        Shape: frame (B, K) (or (K,) unbatched) -> logits (B, K) (or (K,)); the state
        (L, B, H) per field.

        Example:
            >>> model = PianoRollModel(hidden_size=16).eval()
            >>> with torch.no_grad():
            ...     logits, state = model.step(torch.zeros(2, 88))
            ...     logits, state = model.step(torch.bernoulli(torch.sigmoid(logits)), state)
            >>> tuple(logits.shape)
            (2, 88)
        """
        if not isinstance(frame, Tensor) or frame.dim() not in (1, 2) or \
                frame.shape[-1] != self.num_keys:
            got = tuple(frame.shape) if isinstance(frame, Tensor) else type(frame).__name__
            raise ValueError(f"frame must be one step, (B, {self.num_keys}) or "
                             f"({self.num_keys},), got {got}")
        out, state = rnn_step(self.rnn, frame, state, "PianoRollModel")  # (B, H)
        return self.head(self.drop(out)), state  # (B, K)

    def nll(self, x: Tensor, y: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, int]:
        """Summed negative log-likelihood (nats) of the valid frames of y, and their count."""
        per_key = F.binary_cross_entropy_with_logits(self(x, lengths), y, reduction="none")
        per_frame = per_key.sum(-1)  # (T, B)
        if lengths is not None:
            valid = torch.arange(y.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)
            per_frame = per_frame * valid
            return per_frame.sum(), int(lengths.sum())
        return per_frame.sum(), y.shape[0] * y.shape[1]

    def loss(self, x: Tensor, y: Tensor, lengths: Tensor | None = None) -> Tensor:
        """NLL per frame in nats, averaged over the valid frames."""
        total, count = self.nll(x, y, lengths)
        return total / count

    @torch.no_grad()
    def generate(self, prime: Tensor, steps: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """Continue the frames `prime` (T, K) for `steps` frames, each key sampled from its
        Bernoulli and fed back as the next input. Returns (steps, K)."""
        if prime.dim() != 2 or prime.shape[1] != self.num_keys or len(prime) == 0:
            raise ValueError(f"prime must be (T >= 1, {self.num_keys}), got "
                             f"{tuple(prime.shape)}")
        out, state = self.rnn(prime.unsqueeze(1))  # (T, 1, H)
        frames = []
        h = out[-1]
        for _ in range(steps):
            p = torch.sigmoid(self.head(h) / max(temperature, 1e-6))  # (1, K)
            frame = torch.bernoulli(p, generator=generator)
            frames.append(frame[0])
            out, state = self.rnn(frame.unsqueeze(0), state)
            h = out[-1]
        return torch.stack(frames)
