"""ConditionalGenerator: one-to-many, a fixed vector conditions a generated sequence."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.decoding.sampling import sample_next
from rnnkit.layers._regularisers import Dropout
from rnnkit.models._streaming import rnn_step
from rnnkit.models.factory import make_rnn

__all__ = ["ConditionalGenerator", "state_from_condition"]


def state_from_condition(project: nn.Linear, v: Tensor, cell: str, num_layers: int,
                         hidden_size: int) -> Any:
    """A recurrent stack's initial state from the condition v (B, F): h_0 = tanh(W_h v) per
    layer, and c_0 = W_c v for an LSTM; `project` maps F to fields * L * H. (L, B, H) per
    state field."""
    B, L, H = v.shape[0], num_layers, hidden_size
    parts = project(v).view(B, -1, L, H).permute(1, 2, 0, 3)  # (fields, L, B, H)
    if cell == "lstm":
        return torch.tanh(parts[0]).contiguous(), parts[1].contiguous()
    return torch.tanh(parts[0]).contiguous()


class ConditionalGenerator(nn.Module):
    """One-to-many: a condition vector v (an image feature, a style, a class) starts and steers
    a token sequence, as in captioning or conditioned music generation.

    h_0 = tanh(W_h v) per layer (and c_0 = W_c v for LSTM): the condition is the initial
    state; with `condition_every_step` it is also concatenated to every input. Training is
    teacher-forced: input tokens are the targets shifted right behind `bos`. At test time
    `generate` feeds each prediction back as the next input.

    Args:
        condition_size: F, the size of v.
        vocab_size: V, output tokens (including the bos/eos tokens you use).
        embedding_size, hidden_size, num_layers, cell, dropout: the decoder.
        condition_every_step: also feed v at every step.

    Shape: v (B, F), tokens (T, B) -> logits (T, B, V).

    Example:
        >>> import torch
        >>> gen = ConditionalGenerator(4, vocab_size=10, embedding_size=8, hidden_size=16)
        >>> out = gen.generate(torch.randn(2, 4), bos=0, max_length=5, temperature=0)
        >>> len(out), all(len(s) <= 5 for s in out)
        (2, True)
    """

    def __init__(self, condition_size: int, vocab_size: int, embedding_size: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0, condition_every_step: bool = False,
                 **rnn_kwargs: Any) -> None:
        super().__init__()
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.condition_every_step = condition_every_step
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        extra = condition_size if condition_every_step else 0
        self.rnn = make_rnn(cell, embedding_size + extra, hidden_size, num_layers, dropout,
                            **rnn_kwargs)
        fields = 2 if cell == "lstm" else 1
        self.init_state = nn.Linear(condition_size, fields * num_layers * hidden_size)
        self.drop = Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def initial_state(self, v: Tensor) -> Any:
        """The decoder's starting state from v (B, F): (L, B, H) per state field."""
        return state_from_condition(self.init_state, v, self.cell, self.num_layers,
                                    self.hidden_size)

    def forward(self, v: Tensor, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Logits for the next token at every step of `tokens` (T, B), and the final state."""
        emb = self.drop(self.embedding(tokens))  # (T, B, E)
        if self.condition_every_step:
            emb = torch.cat([emb, v.unsqueeze(0).expand(emb.shape[0], -1, -1)], dim=-1)
        out, state = self.rnn(emb, self.initial_state(v) if state is None else state)
        return self.decoder(self.drop(out)), state  # (T, B, V)

    def step(self, v: Tensor, token: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One token of an unbounded stream under the condition v (B, F): the logits for the
        next token (B, V) and the new state; the first call (state None) starts from
        `initial_state(v)`. Equal to `forward(v, tokens)` fed one token at a time.

        Example:
            >>> gen = ConditionalGenerator(4, vocab_size=10, embedding_size=8, hidden_size=16)
            >>> v = torch.randn(2, 4)
            >>> with torch.no_grad():
            ...     logits, state = gen.step(v, torch.tensor([0, 0]))
            ...     logits, state = gen.step(v, logits.argmax(-1), state)
            >>> tuple(logits.shape)
            (2, 10)
        """
        if not isinstance(token, Tensor) or token.dim() != 1 or token.is_floating_point() or \
                v.dim() != 2 or v.shape[0] != token.shape[0]:
            got = (f"{tuple(token.shape)} {token.dtype}" if isinstance(token, Tensor)
                   else type(token).__name__)
            raise ValueError(f"step() takes v (B, F) and token (B,) integer ids, one per row "
                             f"of v; got v {tuple(v.shape)}, token {got}")
        emb = self.drop(self.embedding(token))  # (B, E)
        if self.condition_every_step:
            emb = torch.cat([emb, v], dim=-1)  # (B, E + F)
        out, state = rnn_step(self.rnn, emb, self.initial_state(v) if state is None else state,
                              "ConditionalGenerator")  # (B, H)
        return self.decoder(self.drop(out)), state  # (B, V)

    def loss(self, v: Tensor, targets: Tensor, bos: int, pad: int | None = None) -> Tensor:
        """Teacher-forced cross-entropy of `targets` (T, B), averaged over non-pad steps."""
        inputs = torch.cat([torch.full_like(targets[:1], bos), targets[:-1]])  # shift right
        logits, _ = self(v, inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                               ignore_index=-100 if pad is None else pad)

    @torch.no_grad()
    def generate(self, v: Tensor, bos: int, max_length: int, eos: int | None = None,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 generator: torch.Generator | None = None) -> list[list[int]]:
        """Feed each prediction back; stop a sequence at `eos` (not returned) or max_length.

        temperature 0 is greedy decoding.
        """
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        B = v.shape[0]
        token = torch.full((1, B), bos, dtype=torch.long, device=v.device)
        state, done = None, torch.zeros(B, dtype=torch.bool)
        outputs: list[list[int]] = [[] for _ in range(B)]
        for _ in range(max_length):
            logits, state = self(v, token, state)
            nxt = sample_next(logits[0], temperature, top_k, top_p, generator)  # (B,)
            for b in range(B):
                if not done[b]:
                    if eos is not None and int(nxt[b]) == eos:
                        done[b] = True
                    else:
                        outputs[b].append(int(nxt[b]))
            if done.all():
                break
            token = nxt.view(1, B)
        return outputs
