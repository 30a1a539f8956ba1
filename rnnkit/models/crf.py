"""CRF: a linear-chain conditional random field over per-step tag scores (batched, masked).

A tag sequence y_1..y_n of a sentence with emission scores e_t (C,) scores

    s(y) = start[y_1] + e_1[y_1] + sum_{t=2..n} (trans[y_{t-1}, y_t] + e_t[y_t]) + end[y_n]

and has probability exp(s(y)) / Z with Z = sum over all C^n sequences of exp(s). The forward
algorithm computes log Z in O(n C^2) with `alpha_t[j] = logsumexp_i(alpha_{t-1}[i] +
trans[i, j]) + e_t[j]`; Viterbi replaces the logsumexp by a max and keeps back-pointers.
Padding steps (mask False) leave alpha unchanged, so each sentence ends at its own length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CRF"]


class CRF(nn.Module):
    """Linear-chain CRF with learned start, end and transition scores.

    Args:
        num_tags: C.

    Shape: emissions (T, B, C); tags (T, B) ints; mask (T, B) bool, True at valid steps,
        each column a prefix of True (every sentence has at least one step).

    Example:
        >>> crf = CRF(3)
        >>> e = torch.randn(4, 2, 3)
        >>> mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]], dtype=torch.bool)
        >>> [len(p) for p in crf.decode(e, mask)]
        [4, 2]
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(num_tags))  # (C,) score of the first tag
        self.end = nn.Parameter(torch.zeros(num_tags))  # (C,) score of the last tag
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (C, C) [from, to]
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def _check(self, emissions: Tensor, mask: Tensor | None) -> Tensor:
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags:
            raise ValueError(f"emissions must be (T, B, {self.num_tags}), got "
                             f"{tuple(emissions.shape)}")
        T, B, _ = emissions.shape
        if mask is None:
            return torch.ones(T, B, dtype=torch.bool, device=emissions.device)
        if tuple(mask.shape) != (T, B):
            raise ValueError(f"mask must be (T, B) = {(T, B)}, got {tuple(mask.shape)}")
        mask = mask.to(device=emissions.device, dtype=torch.bool)
        if T and not bool(mask[0].all()):
            raise ValueError("mask: every sequence needs at least one valid step (mask[0] "
                             "all True)")
        return mask

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """log Z of each sequence by the forward algorithm; (B,)."""
        mask = self._check(emissions, mask)
        alpha = self.start + emissions[0]  # (B, C)
        for t in range(1, emissions.shape[0]):
            # (B, C_from, 1) + (C_from, C_to) -> logsumexp over C_from -> (B, C_to)
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[t]
            alpha = torch.where(mask[t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """s(y) of the given tag sequences; (B,)."""
        mask = self._check(emissions, mask)
        if tuple(tags.shape) != tuple(mask.shape):
            raise ValueError(f"tags must be (T, B) = {tuple(mask.shape)}, got "
                             f"{tuple(tags.shape)}")
        tags = tags.masked_fill(~mask, 0).long()  # padding reads a valid index, weighted 0
        m = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (T, B)
        total = self.start[tags[0]] + emit[0]
        if emissions.shape[0] > 1:
            trans = self.transitions[tags[:-1], tags[1:]]  # (T-1, B)
            total = total + ((trans + emit[1:]) * m[1:]).sum(0)
        last = mask.long().sum(0) - 1  # (B,) index of each sequence's last step
        return total + self.end[tags.gather(0, last.unsqueeze(0)).squeeze(0)]

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Negative log-likelihood -log p(y | x) = log Z - s(y) of each sequence; (B,)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """The highest-scoring tag sequence of each sentence (Viterbi), cut to its length."""
        mask = self._check(emissions, mask)
        T, B, C = emissions.shape
        score = self.start + emissions[0]  # (B, C) best score of a path ending in each tag
        pointers = []
        keep = torch.arange(C, device=emissions.device).expand(B, C)  # padding: stay put
        for t in range(1, T):
            best, arg = (score.unsqueeze(2) + self.transitions).max(dim=1)  # (B, C_to)
            valid = mask[t].unsqueeze(1)
            score = torch.where(valid, best + emissions[t], score)
            pointers.append(torch.where(valid, arg, keep))
        last = (score + self.end).argmax(dim=1)  # (B,)
        path = [last]
        for arg in reversed(pointers):
            last = arg.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        tags = torch.stack(path[::-1])  # (T, B); padding steps repeat the last real tag
        lengths = mask.long().sum(0).tolist()
        return [tags[: lengths[b], b].tolist() for b in range(B)]
