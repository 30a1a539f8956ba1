"""Batched beam search with length normalisation and a max-length guard; returns the n best."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.decoding.greedy import Hypothesis, StepModel, normalize_score

__all__ = ["beam_search"]


def _settled(finished: list[Hypothesis], n_best: int, best_live: float, length: int,
             length_penalty: float) -> bool:
    """True when no live hypothesis is expected to enter the row's n best any more."""
    if len(finished) < n_best:
        return False
    nth = sorted((h.score for h in finished), reverse=True)[n_best - 1]
    return nth >= normalize_score(best_live, length, length_penalty)


@torch.no_grad()
def beam_search(model: StepModel, state: Any, start: Tensor, eos_id: int, max_len: int,
                beam_size: int = 5, n_best: int = 1, length_penalty: float = 1.0,
                suppress: list[int] | None = None, with_attention: bool = False
                ) -> list[list[Hypothesis]]:
    """Keep the `beam_size` likeliest partial outputs of every row, all rows in one batch.

    Each step extends all B*K live hypotheses by every token and ranks the 2K best
    candidates of each row by total log-probability. Candidates ending in EOS among the top K
    become finished hypotheses, scored by `log_prob / length ** length_penalty`; the K best
    others stay live. A row stops when its `n_best`-th finished score is at least the best live
    hypothesis' log-probability normalised at the current length (live ones only lose
    probability); at `max_len` its live ones are added as unfinished. Stopping at the first K
    finished instead would let K early, improbable endings crowd out a long, likely output.
    With `beam_size=1` this is exactly greedy decoding.

    Args:
        model, state, start, eos_id, max_len, suppress, with_attention: as in `greedy_decode`.
        beam_size: K, live hypotheses per row.
        n_best: how many hypotheses to return per row, best first (at most K).
        length_penalty: exponent of the length normalisation (0: raw log-probability).

    Returns:
        for each of the B rows, its `n_best` hypotheses, best score first.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    B, K = start.shape[0], beam_size
    device = start.device
    rows = torch.arange(B, device=device).repeat_interleave(K)      # (B*K,)
    state = model.reorder_state(state, rows)
    tokens = start.repeat_interleave(K)                              # (B*K,)
    beam_lp = torch.full((B, K), float("-inf"), dtype=torch.float64)
    beam_lp[:, 0] = 0.0                       # all K beams start equal: expand only the first
    history = torch.zeros(B * K, 0, dtype=torch.long)                # (B*K, t)
    att_hist: Tensor | None = None                                   # (B*K, t, S)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    for t in range(max_len):
        logits, state, weights = model.decode_step(tokens, state)
        logp = F.log_softmax(logits.double(), -1).cpu()               # (B*K, V)
        if suppress:
            logp[:, suppress] = float("-inf")
        V = logp.shape[1]
        cand = (beam_lp.view(-1, 1) + logp).view(B, K * V)          # (B, K*V)
        top_lp, top_idx = cand.topk(min(2 * K, K * V), dim=1)        # (B, 2K)
        top_lp_l, top_idx_l = top_lp.tolist(), top_idx.tolist()
        src = torch.zeros(B, K, dtype=torch.long)
        new_tok = torch.zeros(B, K, dtype=torch.long)
        new_lp = torch.full((B, K), float("-inf"), dtype=torch.float64)
        if with_attention and weights is not None:
            att_hist = weights.cpu().unsqueeze(1) if att_hist is None else \
                torch.cat([att_hist, weights.cpu().unsqueeze(1)], 1)
        for b in range(B):
            if done[b]:
                continue
            live = 0
            for c, (lp, idx) in enumerate(zip(top_lp_l[b], top_idx_l[b], strict=True)):
                if lp == float("-inf") or live == K:
                    break
                k, tok = divmod(idx, V)
                if tok == eos_id:
                    if c < K:
                        row = b * K + k
                        att = att_hist[row, :t + 1] if att_hist is not None else None
                        finished[b].append(Hypothesis(
                            history[row].tolist(), lp, normalize_score(lp, t + 1,
                                                                       length_penalty),
                            True, att))
                    continue
                src[b, live], new_tok[b, live], new_lp[b, live] = k, tok, lp
                live += 1
            if live == 0 or _settled(finished[b], n_best, float(new_lp[b, 0]), t + 1,
                                     length_penalty):
                done[b] = True
                new_lp[b] = float("-inf")
        if all(done):
            break
        flat = (torch.arange(B).unsqueeze(1) * K + src).view(-1)     # (B*K,)
        history = torch.cat([history[flat], new_tok.view(-1, 1)], 1)
        if att_hist is not None:
            att_hist = att_hist[flat]
        beam_lp = new_lp
        state = model.reorder_state(state, flat.to(device))
        tokens = new_tok.view(-1).to(device)
    for b in range(B):
        if done[b]:
            continue
        for k in range(K):  # the max-length guard: live hypotheses end unfinished
            lp = float(beam_lp[b, k])
            if lp > float("-inf"):
                row = b * K + k
                att = att_hist[row] if att_hist is not None else None
                finished[b].append(Hypothesis(history[row].tolist(), lp, normalize_score(
                    lp, history.shape[1], length_penalty), False, att))
    out = []
    for hyps in finished:
        # Ties keep the order of discovery (sorted is stable), as greedy decoding would.
        out.append(sorted(hyps, key=lambda h: -h.score)[:n_best])
    return out
