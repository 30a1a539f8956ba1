"""ConditionalPianoRoll: one-to-many music, a style vector conditions a piano-roll sequence."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers._regularisers import Dropout
from rnnkit.models._streaming import rnn_step
from rnnkit.models.conditional import state_from_condition
from rnnkit.models.factory import make_rnn, run_rnn

__all__ = ["ConditionalPianoRoll"]


class ConditionalPianoRoll(nn.Module):
    """p(x_{t+1} | x_1..x_t, v) = prod_k Bernoulli(x_{t+1,k}; sigmoid(c + V h_t)_k).

    The one-to-many conditioning of `ConditionalGenerator` applied to piano rolls, whose
    frames are sets of keys (multi-hot), not tokens: the style vector v (e.g. a one-hot of
    the data set a piece comes from) sets the initial state, h_0 = tanh(W_h v) (c_0 = W_c v
    for an LSTM), and with `condition_every_step` is also concatenated to every input frame.
    Given h_t the keys of the next frame are independent, as in `PianoRollModel`; the loss is
    the NLL of a frame in nats.

    Args:
        num_styles: F, the size of v.
        num_keys: K (88 for a piano).
        hidden_size, num_layers, cell, dropout: the recurrent stack (rnnkit layers).
        condition_every_step: also feed v beside every frame.
        styles: optional names of the styles (one per component of a one-hot v).

    Shape: x (T, B, K) 0/1 frames, v (B, F) -> logits (T, B, K).

    Example:
        >>> import torch
        >>> model = ConditionalPianoRoll(2, hidden_size=16)
        >>> tuple(model(torch.zeros(5, 3, 88), model.one_hot(torch.tensor([0, 1, 1]))).shape)
        (5, 3, 88)
    """

    def __init__(self, num_styles: int, num_keys: int = 88, hidden_size: int = 256,
                 num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0,
                 condition_every_step: bool = True, styles: list[str] | None = None,
                 **rnn_kwargs: Any) -> None:
        super().__init__()
        if styles is not None and len(styles) != num_styles:
            raise ValueError(f"styles names {len(styles)} styles, num_styles is {num_styles}")
        self.num_styles, self.num_keys, self.styles = num_styles, num_keys, styles
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.condition_every_step = condition_every_step
        extra = num_styles if condition_every_step else 0
        self.rnn = make_rnn(cell, num_keys + extra, hidden_size, num_layers, dropout,
                            **rnn_kwargs)
        fields = 2 if cell == "lstm" else 1
        self.init_state = nn.Linear(num_styles, fields * num_layers * hidden_size)
        self.drop = Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_keys)

    def one_hot(self, style: Tensor | int | str) -> Tensor:
        """v (B, F) from style indices (B,), one index, or one style name (then B = 1)."""
        if isinstance(style, str):
            if not self.styles or style not in self.styles:
                raise ValueError(f"unknown style {style!r}; this model knows "
                                 f"{self.styles or list(range(self.num_styles))}")
            style = self.styles.index(style)
        ids = torch.as_tensor(style).reshape(-1)
        if ids.is_floating_point() or ids.numel() and not 0 <= int(ids.min()) <= \
                int(ids.max()) < self.num_styles:
            raise ValueError(f"style indices must be integers in 0..{self.num_styles - 1}, "
                             f"got {ids.tolist()}")
        return F.one_hot(ids.long(), self.num_styles).to(self.head.weight.dtype)

    def _inputs(self, x: Tensor, v: Tensor) -> Tensor:
        if v.dim() != 2 or v.shape[1] != self.num_styles or v.shape[0] != x.shape[-2]:
            raise ValueError(f"v must be (B, {self.num_styles}) with B = {x.shape[-2]} (the "
                             f"frames' batch), got {tuple(v.shape)}")
        if not self.condition_every_step:
            return x
        return torch.cat([x, v.expand(*x.shape[:-1], -1)], dim=-1)  # (..., B, K + F)

    def forward(self, x: Tensor, v: Tensor, lengths: Tensor | None = None,
                state: Any = None) -> Tensor:
        if state is None:
            state = state_from_condition(self.init_state, v, self.cell, self.num_layers,
                                         self.hidden_size)
        out, _ = run_rnn(self.rnn, self._inputs(x, v), state, lengths)  # (T, B, H)
        return self.head(self.drop(out))  # (T, B, K)

    def step(self, frame: Tensor, v: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One frame (B, K) under the condition v (B, F): the next frame's logits (B, K) and
        the new state; the first call (state None) starts from the state v sets."""
        if state is None:
            state = state_from_condition(self.init_state, v, self.cell, self.num_layers,
                                         self.hidden_size)
        out, state = rnn_step(self.rnn, self._inputs(frame, v), state, "ConditionalPianoRoll")
        return self.head(self.drop(out)), state  # (B, K)

    def nll(self, x: Tensor, y: Tensor, lengths: Tensor | None = None, *,
            v: Tensor) -> tuple[Tensor, int]:
        """Summed negative log-likelihood (nats) of the valid frames of y, and their count."""
        per_key = F.binary_cross_entropy_with_logits(self(x, v, lengths), y, reduction="none")
        per_frame = per_key.sum(-1)  # (T, B)
        if lengths is None:
            return per_frame.sum(), y.shape[0] * y.shape[1]
        valid = torch.arange(y.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        return (per_frame * valid).sum(), int(lengths.sum())

    def loss(self, x: Tensor, y: Tensor, lengths: Tensor | None = None, *,
             v: Tensor) -> Tensor:
        """NLL per frame in nats, averaged over the valid frames."""
        total, count = self.nll(x, y, lengths, v=v)
        return total / count

    @torch.no_grad()
    def generate(self, prime: Tensor, steps: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None, *, v: Tensor) -> Tensor:
        """Continue the frames `prime` (T, K) under the style v (1, F) for `steps` frames, each
        key sampled from its Bernoulli and fed back. Returns (steps, K)."""
        if prime.dim() != 2 or prime.shape[1] != self.num_keys or len(prime) == 0:
            raise ValueError(f"prime must be (T >= 1, {self.num_keys}), got "
                             f"{tuple(prime.shape)}")
        logits, state = None, None
        for frame in prime:
            logits, state = self.step(frame.unsqueeze(0), v, state)  # (1, K)
        frames = []
        for _ in range(steps):
            p = torch.sigmoid(logits / max(temperature, 1e-6))  # (1, K)
            frame = torch.bernoulli(p, generator=generator)
            frames.append(frame[0])
            logits, state = self.step(frame, v, state)
        return torch.stack(frames) if frames else prime.new_zeros(0, self.num_keys)
