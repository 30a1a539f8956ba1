"""Tests for greedy decoding and beam search: beam 1 = greedy, scores, n-best, guards, LM use."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.decoding.beam import beam_search
from rnnkit.decoding.greedy import LanguageModelStepper, greedy_decode
from rnnkit.decoding.sampling import generate
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.seq2seq import Seq2Seq

EOS = 3


class TableModel:
    """A StepModel whose next-token distribution depends only on the last token."""

    def __init__(self, probs: dict[int, list[float]]) -> None:
        self.table = torch.tensor([probs[k] for k in sorted(probs)]).log()

    def decode_step(self, tokens, state):
        return self.table[tokens], state, None

    def reorder_state(self, state, index):
        return state


# From BOS (0): token 1 with 0.6, token 2 with 0.4. After 1: EOS with 0.4; after 2: EOS for
# sure. Greedy takes [1] (0.6 * 0.4 = 0.24); the best sequence is [2] with probability 0.4.
TRAP = {0: [0.0, 0.6, 0.4, 0.0], 1: [0.0, 0.3, 0.3, 0.4], 2: [0.0, 0.0, 0.0, 1.0],
        3: [0.25, 0.25, 0.25, 0.25]}


def _seq2seq() -> tuple[Seq2Seq, torch.Tensor, torch.Tensor]:
    m = Seq2Seq(10, 8, embedding_size=6, hidden_size=7, attention="bahdanau",
                bidirectional=True, backend="torch").eval()
    src = torch.randint(4, 10, (5, 6))
    lengths = torch.tensor([5, 3, 1, 4, 2, 5])
    return m, src, lengths


def test_beam_finds_the_sequence_greedy_misses():
    m = TableModel(TRAP)
    start = torch.zeros(1, dtype=torch.long)
    greedy = greedy_decode(m, None, start, EOS, 10, length_penalty=0.0)[0]
    assert greedy.tokens == [1] and math.isclose(greedy.log_prob, math.log(0.24), rel_tol=1e-6)
    best = beam_search(m, None, start, EOS, 10, beam_size=2, length_penalty=0.0)[0][0]
    assert best.tokens == [2] and best.finished
    assert math.isclose(best.log_prob, math.log(0.4), rel_tol=1e-6)


def test_beam_one_equals_greedy_on_a_random_model():
    torch.manual_seed(3)
    m, src, lengths = _seq2seq()
    start = torch.full((6,), 2)
    greedy = greedy_decode(m, m.init_decoder(src, lengths), start, EOS, 7)
    beam = beam_search(m, m.init_decoder(src, lengths), start, EOS, 7, beam_size=1)
    assert [b[0].tokens for b in beam] == [g.tokens for g in greedy]
    assert [b[0].finished for b in beam] == [g.finished for g in greedy]
    for b, g in zip(beam, greedy, strict=True):
        assert math.isclose(b[0].log_prob, g.log_prob, rel_tol=1e-5, abs_tol=1e-6)


def test_n_best_scores_are_true_log_probabilities_best_first():
    torch.manual_seed(1)
    m, src, lengths = _seq2seq()
    hyps = beam_search(m, m.init_decoder(src, lengths), torch.full((6,), 2), EOS, 6,
                       beam_size=4, n_best=3, length_penalty=0.0, with_attention=True)
    for b, row in enumerate(hyps):
        assert len(row) == 3
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
        assert len({tuple(h.tokens) for h in row}) == 3
        for h in row:
            # Rescore the hypothesis with teacher forcing.
            tgt = torch.tensor([2, *h.tokens]).view(-1, 1)
            with torch.no_grad():
                logits, att = m(src[:lengths[b], b:b + 1], lengths[b:b + 1], tgt)
            target = h.tokens + [EOS] if h.finished else h.tokens
            lp = F.log_softmax(logits[:len(target), 0].double(), -1)
            assert math.isclose(h.log_prob, float(lp[range(len(target)), target].sum()),
                                rel_tol=1e-4)
            assert torch.allclose(h.attention[:, :lengths[b]], att[:len(target), 0], atol=1e-5)


def test_max_length_guard_ends_unfinished_hypotheses():
    never = {k: [0.0, 0.5, 0.5, 0.0] for k in range(4)}
    m = TableModel(never)
    out = beam_search(m, None, torch.zeros(2, dtype=torch.long), EOS, 4, beam_size=3, n_best=2)
    for row in out:
        assert len(row) == 2 and all(len(h.tokens) == 4 and not h.finished for h in row)
    g = greedy_decode(m, None, torch.zeros(1, dtype=torch.long), EOS, 4)[0]
    assert len(g.tokens) == 4 and not g.finished


def test_suppressed_tokens_never_appear():
    m = TableModel(TRAP)
    out = beam_search(m, None, torch.zeros(1, dtype=torch.long), EOS, 5, beam_size=2,
                      suppress=[2])
    assert all(2 not in h.tokens for h in out[0])


def test_argument_errors():
    m = TableModel(TRAP)
    start = torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        beam_search(m, None, start, EOS, 5, beam_size=0)
    with pytest.raises(ValueError, match=r"n_best must be in \[1, beam_size=2\], got 3"):
        beam_search(m, None, start, EOS, 5, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="max_len must be >= 1"):
        greedy_decode(m, None, start, EOS, 0)


def test_language_model_decodes_through_the_stepper():
    lm = LanguageModel(12, 5, 6, 1, backend="torch").eval()
    prompt = torch.tensor([3, 4, 5])
    stepper = LanguageModelStepper(lm)
    state, last = stepper.prime(prompt)
    greedy = greedy_decode(stepper, state, last, eos_id=-1, max_len=8)[0]
    assert greedy.tokens == generate(lm, prompt, 8, temperature=0.0).tolist()
    state, last = stepper.prime(prompt)
    beam = beam_search(stepper, state, last, eos_id=-1, max_len=8, beam_size=1)[0][0]
    assert beam.tokens == greedy.tokens
