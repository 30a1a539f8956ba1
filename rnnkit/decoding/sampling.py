"""Greedy decoding and sampling (temperature, top-k, top-p), fed back one token at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["filter_logits", "sample_next", "generate"]


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the `top_k` largest logits and the smallest set whose probability reaches `top_p`;
    the rest become -inf.

    Shape:
        logits: (B, V) -> (B, V).

    Example:
        >>> filter_logits(torch.tensor([[1.0, 3.0, 2.0]]), top_k=2).tolist()
        [[-inf, 3.0, 2.0]]
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    out = logits.clone()
    if 0 < top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]        # (B, 1)
        out[out < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)  # (B, V)
        cum = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the first stays)
        drop_sorted = (cum - F.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out[drop] = float("-inf")
    return out


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
    """One token id per row of `logits` (B, V): argmax when `temperature == 0`, else a sample
    from `softmax(logits / temperature)` restricted by top-k / top-p. Returns (B,)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model: nn.Module, prompt: Tensor, length: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
             on_token: Callable[[int], Any] | None = None,
             suppress: list[int] | None = None) -> Tensor:
    """Prime `model` with `prompt`, then feed each prediction back as the next input.

    `model(x, state) -> (logits, state)` with x (T, B) ids and logits (T, B, V), as
    LanguageModel does.

    Args:
        prompt: token ids (T0,), at least one.
        length: how many new tokens to generate.
        temperature: 0 for greedy decoding; below 1 sharpens, above 1 flattens.
        top_k, top_p: restrict sampling to the k likeliest tokens / the nucleus of mass p.
        seed: seed for a private generator, so the same seed gives the same text.
        on_token: called with each new token id as soon as it is chosen (streaming).
        suppress: token ids never to generate (e.g. `<unk>`).

    Returns:
        the new token ids, (length,).
    """
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise ValueError(f"prompt must be a non-empty 1-D tensor of ids, got shape "
                         f"{tuple(prompt.shape)}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    gen = None
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        logits, state = model(prompt.view(-1, 1), None)                 # (T0, 1, V)
        last = logits[-1]                                               # (1, V)
        out = []
        for _ in range(length):
            if suppress:
                last = last.clone()
                last[:, suppress] = float("-inf")
            tok = sample_next(last, temperature, top_k, top_p, gen)      # (1,)
            out.append(int(tok))
            if on_token is not None:
                on_token(int(tok))
            logits, state = model(tok.view(1, 1), state)                # (1, 1, V)
            last = logits[-1]
    finally:
        model.train(was_training)
    return torch.tensor(out, dtype=torch.long)
