"""Step-by-step decoding for any `decode_step` model: greedy or sampled, batched, with scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.decoding.sampling import sample_next

__all__ = ["Hypothesis", "StepModel", "LanguageModelStepper", "greedy_decode", "normalize_score"]


class StepModel(Protocol):
    """What greedy, sampled and beam decoding need from a model (Seq2Seq has it; a
    LanguageModel gets it from LanguageModelStepper)."""

    def decode_step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any, Tensor | None]:
        """tokens (N,) -> logits (N, V), the new state, attention weights (N, S) or None."""
        ...

    def reorder_state(self, state: Any, index: Tensor) -> Any:
        """The state of batch rows `index` (N',), rows repeated as often as named. A model may
        also take `keep_source=True` (Seq2Seq does): beam search then passes it while it only
        moves hypotheses within their sentence, so per-sentence parts may stay in place."""
        ...


@dataclass
class Hypothesis:
    """One decoded sequence: tokens without BOS/EOS, the summed log-probability (EOS included),
    the length-normalised score, whether EOS ended it, and its attention (T, S) if any."""

    tokens: list[int]
    log_prob: float
    score: float
    finished: bool
    attention: Tensor | None = None


def normalize_score(log_prob: float, length: int, length_penalty: float) -> float:
    """`log_prob / length ** length_penalty`: 0 ranks by total log-probability, 1 by the mean
    per token (length counts the EOS step), which keeps short outputs from winning unfairly.

    Example:
        >>> normalize_score(-4.0, 4, 1.0), normalize_score(-4.0, 4, 0.0)
        (-1.0, -4.0)
    """
    return log_prob / (max(length, 1) ** length_penalty)


class LanguageModelStepper:
    """Adapts a LanguageModel (`model(x, state) -> (logits, state)`) to StepModel, so that
    greedy_decode and beam_search continue a prompt. Its state is the recurrent state."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def decode_step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any, None]:
        logits, state = self.model(tokens.view(1, -1), state)        # (1, N, V)
        return logits[0], state, None

    def reorder_state(self, state: Any, index: Tensor) -> Any:
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def prime(self, prompt: Tensor, batch_size: int = 1) -> tuple[Any, Tensor]:
        """Run all but the last prompt token; returns (state, the last token repeated (B,))."""
        state = None
        if prompt.numel() > 1:
            _, state = self.model(prompt[:-1].view(-1, 1).expand(-1, batch_size).contiguous())
        return state, prompt[-1:].expand(batch_size).contiguous()


@torch.no_grad()
def greedy_decode(model: StepModel, state: Any, start: Tensor, eos_id: int, max_len: int,
                  temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                  generator: torch.Generator | None = None, suppress: list[int] | None = None,
                  length_penalty: float = 1.0, with_attention: bool = False
                  ) -> list[Hypothesis]:
    """Decode a batch one token at a time, feeding each choice back as the next input.

    Args:
        model: a StepModel (e.g. Seq2Seq) in eval mode.
        state: its starting state for B rows (e.g. `Seq2Seq.init_decoder(src, src_len)`).
        start: the first input token of each row (B,), e.g. BOS.
        eos_id: the token that ends a row.
        max_len: the most tokens generated per row (the guard against never-ending output).
        temperature: 0 takes the argmax (greedy); above 0 samples (see `sample_next`).
        suppress: token ids never produced (e.g. padding, BOS, `<unk>`).
        length_penalty: exponent of the length normalisation of each hypothesis' score.
        with_attention: keep each row's attention weights (T, S).

    Returns:
        one Hypothesis per row.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    B = start.shape[0]
    # Greedy rows that have ended leave the batch (their state is dropped), so a batch of
    # outputs of mixed lengths costs the steps its rows still need; sampling keeps every row,
    # so its random draws stay the same for a given generator.
    compact = temperature == 0
    rows = torch.arange(B)                        # the rows still in the batch, by index
    tokens = start
    done = torch.zeros(B, dtype=torch.bool)       # sampling: rows whose output has ended
    log_prob = torch.zeros(B, dtype=torch.float64)
    seqs = torch.full((B, max_len), eos_id, dtype=torch.long)        # EOS past each end
    maps: Tensor | None = None                                       # (B, max_len, S)
    steps_run = 0
    for t in range(max_len):
        logits, state, weights = model.decode_step(tokens, state)
        logits = logits.float()
        if suppress:
            logits[:, suppress] = float("-inf")
        tok = sample_next(logits, temperature, top_k, top_p, generator)   # (N,)
        lp = F.log_softmax(logits, -1).gather(1, tok.unsqueeze(1))[:, 0].double().cpu()
        tok_cpu = tok.cpu()
        ended = tok_cpu == eos_id
        if with_attention and weights is not None and maps is None:
            maps = weights.new_zeros(B, max_len, weights.shape[-1], device="cpu")
        steps_run = t + 1
        if not compact:  # every row stays; extraction stops at each row's first EOS
            log_prob += torch.where(done, 0.0, lp)
            seqs[:, t] = tok_cpu
            if maps is not None:
                maps[:, t] = weights.cpu()
            done |= ended
            if bool(done.all()):
                break
            tokens = tok
            continue
        # Greedy: every row in the batch is still decoding (ended ones left at once).
        if rows.shape[0] == B:
            log_prob += lp
            seqs[:, t] = tok_cpu
            if maps is not None:
                maps[:, t] = weights.cpu()
        else:
            log_prob[rows] += lp
            seqs[rows, t] = tok_cpu
            if maps is not None:
                maps[rows, t] = weights.cpu()
        tokens = tok
        if bool(ended.any()):
            keep = (~ended).nonzero(as_tuple=True)[0]
            if keep.shape[0] == 0:
                break
            rows = rows[keep]
            keep = keep.to(tok.device)
            state = model.reorder_state(state, keep)
            tokens = tok.index_select(0, keep)
    steps = seqs[:, :steps_run].tolist()                              # B x T
    out = []
    for b in range(B):
        seq = steps[b]
        finished = eos_id in seq
        toks = seq[:seq.index(eos_id)] if finished else seq
        n = len(toks) + int(finished)
        att = maps[b, :n] if maps is not None else None
        lp = float(log_prob[b])
        out.append(Hypothesis(toks, lp, normalize_score(lp, n, length_penalty), finished, att))
    return out
