"""Batched beam search with length normalisation and a max-length guard; returns the n best."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.decoding.greedy import Hypothesis, StepModel, normalize_score

__all__ = ["beam_search"]


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
    # A model whose reorder_state can leave per-source parts in place (Seq2Seq) is spared
    # copying them while no sentence leaves the batch: hypotheses move within their sentence.
    keeps_source = "keep_source" in inspect.signature(model.reorder_state).parameters
    rows = torch.arange(B, device=device).repeat_interleave(K)      # (B*K,)
    state = model.reorder_state(state, rows)
    tokens = start.repeat_interleave(K)                              # (A*K,)
    alive = torch.arange(B)                  # the A rows still searching, by original index
    beam_lp = torch.full((B, K), float("-inf"), dtype=torch.float64)  # (A, K)
    beam_lp[:, 0] = 0.0                       # all K beams start equal: expand only the first
    # The n_best best finished scores of each alive row (-inf: fewer finished so far).
    best_done = torch.full((B, n_best), float("-inf"), dtype=torch.float64)  # (A, n_best)
    history = torch.zeros(B * K, 0, dtype=torch.long)                # (A*K, t)
    att_hist: Tensor | None = None                                   # (A*K, t, S)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    for t in range(max_len):
        A = alive.shape[0]
        logits, state, weights = model.decode_step(tokens, state)
        logp = F.log_softmax(logits.double(), -1).cpu()               # (A*K, V)
        if suppress:
            logp[:, suppress] = float("-inf")
        V = logp.shape[1]
        if with_attention and weights is not None:
            att_hist = weights.cpu().unsqueeze(1) if att_hist is None else \
                torch.cat([att_hist, weights.cpu().unsqueeze(1)], 1)
        cand = (beam_lp.view(-1, 1) + logp).view(A, K * V)          # (A, K*V)
        top_lp, top_idx = cand.topk(min(2 * K, K * V), dim=1)        # (A, C), best first
        src, tok = top_idx // V, top_idx % V
        finite = top_lp > float("-inf")
        is_eos = tok == eos_id
        # An EOS among a row's K best candidates finishes that hypothesis; the first K others
        # stay live, in rank order (there are at least K: each beam has one EOS candidate).
        ends = is_eos & finite & (torch.arange(top_lp.shape[1]) < K)
        goes_on = ~is_eos & finite
        rank = goes_on.cumsum(1) - 1
        keep_a, keep_c = (goes_on & (rank < K)).nonzero(as_tuple=True)
        slot = rank[keep_a, keep_c]
        new_lp = torch.full((A, K), float("-inf"), dtype=torch.float64)
        new_src = torch.zeros(A, K, dtype=torch.long)
        new_tok = torch.zeros(A, K, dtype=torch.long)
        new_lp[keep_a, slot] = top_lp[keep_a, keep_c]
        new_src[keep_a, slot] = src[keep_a, keep_c]
        new_tok[keep_a, slot] = tok[keep_a, keep_c]
        scale = float(max(t + 1, 1) ** length_penalty)
        if bool(ends.any()):
            end_a, end_c = ends.nonzero(as_tuple=True)                # row-major: discovery order
            end_rows = end_a * K + src[end_a, end_c]
            end_lp = top_lp[end_a, end_c]
            texts = history[end_rows].tolist()
            for a, row, lp, text in zip(end_a.tolist(), end_rows.tolist(), end_lp.tolist(),
                                        texts, strict=True):
                att = att_hist[row, :t + 1] if att_hist is not None else None
                finished[int(alive[a])].append(Hypothesis(
                    text, lp, normalize_score(lp, t + 1, length_penalty), True, att))
            scores = torch.where(ends, top_lp / scale, float("-inf"))
            best_done = torch.cat([best_done, scores], 1).topk(n_best, dim=1).values
        # A row stops when its n_best-th finished score beats the best live hypothesis
        # normalised at the current length: live ones only lose probability from here.
        settled = best_done[:, -1] >= new_lp[:, 0] / scale
        stop = settled | (new_lp[:, 0] == float("-inf"))
        if bool(stop.all()):
            beam_lp = new_lp[:0]
            break
        go = (~stop).nonzero(as_tuple=True)[0]                       # (A',)
        flat = (go.unsqueeze(1) * K + new_src[go]).view(-1)          # (A'*K,)
        history = torch.cat([history[flat], new_tok[go].view(-1, 1)], 1)
        if att_hist is not None:
            att_hist = att_hist[flat]
        if keeps_source and go.shape[0] == A:  # every sentence stays: its source rows too
            state = model.reorder_state(state, flat.to(device), keep_source=True)
        else:
            state = model.reorder_state(state, flat.to(device))
        alive, beam_lp, best_done = alive[go], new_lp[go], best_done[go]
        tokens = new_tok[go].view(-1).to(device)
    # The max-length guard: the live hypotheses of rows still searching end unfinished.
    live_lp = beam_lp.tolist()
    for a, b in enumerate(alive.tolist() if beam_lp.shape[0] else []):
        for k, lp in enumerate(live_lp[a]):
            if lp > float("-inf"):
                row = a * K + k
                att = att_hist[row] if att_hist is not None else None
                finished[b].append(Hypothesis(history[row].tolist(), lp, normalize_score(
                    lp, history.shape[1], length_penalty), False, att))
    out = []
    for hyps in finished:
        # Ties keep the order of discovery (sorted is stable), as greedy decoding would.
        out.append(sorted(hyps, key=lambda h: -h.score)[:n_best])
    return out
