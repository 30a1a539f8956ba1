"""Attention over encoder outputs: Bahdanau (additive) and Luong (dot, general) scores."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Attention", "ATTENTION_KINDS"]

ATTENTION_KINDS = ("bahdanau", "dot", "general")


class Attention(nn.Module):
    """Scores every encoder position against a decoder query; returns the context and weights.

    With `h_s` an encoder output (size `key_size`) and `q` the decoder query (`query_size`):

    - bahdanau (additive, Bahdanau et al. 2015): `score = v^T tanh(W_q q + W_k h_s)`
    - dot (Luong et al. 2015): `score = q^T h_s` (needs `query_size == key_size`)
    - general (Luong et al. 2015): `score = q^T W h_s`

    `a = softmax(score)` over the unpadded source positions, `context = sum_s a_s h_s`.

    Args:
        kind: one of "bahdanau", "dot", "general".
        query_size: size of the decoder's query vector.
        key_size: size of each encoder output (2H for a bidirectional encoder).

    Shape:
        query: (B, Hq) or (T, B, Hq); keys: (S, B, Hk); mask: (S, B) bool, True where a real
        token is. Returns context (B, Hk) or (T, B, Hk) and weights (B, S) or (T, B, S).

    Example:
        >>> att = Attention("general", query_size=3, key_size=4)
        >>> keys = torch.randn(5, 2, 4)
        >>> mask = torch.tensor([[True, True]] * 3 + [[True, False]] * 2)
        >>> ctx, w = att(torch.randn(2, 3), keys, mask)
        >>> tuple(ctx.shape), tuple(w.shape), w[1, 3:].tolist()
        ((2, 4), (2, 5), [0.0, 0.0])
    """

    def __init__(self, kind: str, query_size: int, key_size: int) -> None:
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention kind must be one of {ATTENTION_KINDS}, got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError(f"dot attention needs query_size == key_size, got "
                             f"query_size={query_size}, key_size={key_size} (use 'general')")
        self.kind = kind
        if kind == "bahdanau":
            self.w_query = nn.Linear(query_size, query_size, bias=False)
            self.w_key = nn.Linear(key_size, query_size, bias=True)
            self.v = nn.Linear(query_size, 1, bias=False)
        elif kind == "general":
            self.w = nn.Linear(key_size, query_size, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """The query-independent part of the score, computed once per source: (S, B, *)."""
        if self.kind == "bahdanau":
            return self.w_key(keys)                                  # (S, B, Hq)
        if self.kind == "general":
            return self.w(keys)                                      # (S, B, Hq)
        return keys

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor,
                projected: Tensor | None = None) -> tuple[Tensor, Tensor]:
        single = query.dim() == 2
        q = query.unsqueeze(0) if single else query                  # (T, B, Hq)
        pk = self.project_keys(keys) if projected is None else projected  # (S, B, Hq)
        if self.kind == "bahdanau":
            # (T, 1, B, Hq) + (1, S, B, Hq) -> (T, S, B, Hq) -> (T, S, B)
            e = self.v(torch.tanh(self.w_query(q).unsqueeze(1) + pk.unsqueeze(0))).squeeze(-1)
            scores = e.permute(0, 2, 1)                              # (T, B, S)
        else:
            scores = torch.einsum("tbh,sbh->tbs", q, pk)             # (T, B, S)
        scores = scores.masked_fill(~mask.t().unsqueeze(0), float("-inf"))
        weights = torch.softmax(scores, dim=-1)                      # (T, B, S)
        context = torch.einsum("tbs,sbh->tbh", weights, keys)        # (T, B, Hk)
        if single:
            return context[0], weights[0]
        return context, weights
