"""Tests for greedy decoding and beam search: beam 1 = greedy, scores, n-best, guards, LM use."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


# ---- the batched bookkeeping against a per-row reference ----------------------------------

def _reference_beam(model, state, start, eos_id, max_len, beam_size, n_best, length_penalty,
                    suppress=None, with_attention=False):
    """Beam search written row by row in plain Python, every row decoded until the end."""
    from rnnkit.decoding.greedy import Hypothesis, normalize_score

    B, K = start.shape[0], beam_size
    state = model.reorder_state(state, torch.arange(B).repeat_interleave(K))
    tokens = start.repeat_interleave(K)
    beam_lp = [[0.0] + [-math.inf] * (K - 1) for _ in range(B)]
    history = [[] for _ in range(B * K)]
    atts = [[] for _ in range(B * K)]
    finished = [[] for _ in range(B)]
    done = [False] * B
    for t in range(max_len):
        with torch.no_grad():
            logits, state, weights = model.decode_step(tokens, state)
        logp = F.log_softmax(logits.double(), -1)
        if suppress:
            logp[:, suppress] = -math.inf
        V = logp.shape[1]
        for r in range(B * K):
            if with_attention and weights is not None:
                atts[r].append(weights[r])
        src, new_tok, new_lp = [0] * (B * K), [0] * (B * K), [[-math.inf] * K for _ in range(B)]
        for b in range(B):
            if done[b]:
                continue
            cands = sorted(((beam_lp[b][k] + float(logp[b * K + k, v]), k * V + v)
                            for k in range(K) for v in range(V)),
                           key=lambda c: (-c[0], c[1]))[:2 * K]
            live = 0
            for c, (lp, idx) in enumerate(cands):
                if lp == -math.inf or live == K:
                    break
                k, tok = divmod(idx, V)
                if tok == eos_id:
                    if c < K:
                        row = b * K + k
                        att = torch.stack(atts[row]) if atts[row] else None
                        finished[b].append(Hypothesis(list(history[row]), lp, normalize_score(
                            lp, t + 1, length_penalty), True, att))
                    continue
                src[b * K + live], new_tok[b * K + live], new_lp[b][live] = k, tok, lp
                live += 1
            scores = sorted((h.score for h in finished[b]), reverse=True)
            if live == 0 or (len(scores) >= n_best and scores[n_best - 1] >= normalize_score(
                    new_lp[b][0], t + 1, length_penalty)):
                done[b] = True
                new_lp[b] = [-math.inf] * K
        if all(done):
            break
        flat = [(r // K) * K + src[r] for r in range(B * K)]
        history = [history[f] + [new_tok[r]] for r, f in enumerate(flat)]
        atts = [list(atts[f]) for f in flat]
        beam_lp = new_lp
        state = model.reorder_state(state, torch.tensor(flat))
        tokens = torch.tensor(new_tok)
    for b in range(B):
        if done[b]:
            continue
        for k in range(K):
            lp = beam_lp[b][k]
            if lp > -math.inf:
                row = b * K + k
                att = torch.stack(atts[row]) if atts[row] else None
                finished[b].append(Hypothesis(list(history[row]), lp, normalize_score(
                    lp, len(history[row]), length_penalty), False, att))
    return [sorted(h, key=lambda h: -h.score)[:n_best] for h in finished]


class _StateModel:
    """A StepModel whose next-token log-probabilities depend on the last token and a running
    state (a hash of the prefix), so a wrong reordering of the state changes the outputs.
    Continuous random probabilities: candidates tie only when two prefixes visit the same
    (token, state) pairs in another order (the test accepts either order of such ties);
    `eos_weight` 0 makes EOS impossible (log-probability -inf)."""

    def __init__(self, V: int, seed: int, eos_weight: int) -> None:
        g = torch.Generator().manual_seed(seed)
        weights = torch.rand(V, 7, V, generator=g, dtype=torch.float64) + 0.1
        weights[..., EOS] *= eos_weight / 3
        self.table = (weights / weights.sum(-1, keepdim=True)).log()
        self.attention = torch.rand(V, 7, 4, generator=g)

    def decode_step(self, tokens, state):
        state = (state * 5 + tokens + 1) % 7
        return self.table[tokens, state], state, self.attention[tokens, state]

    def reorder_state(self, state, index):
        return state.index_select(0, index)


@settings(max_examples=60, deadline=None)
@example(B=2, K=4, n_best=2, max_len=4, V=4, seed=114756, eos_weight=4, penalty=0.0,
         suppress=True, with_attention=False)  # two prefixes tie exactly
@given(B=st.integers(1, 5), K=st.integers(1, 4), n_best=st.integers(1, 4),
       max_len=st.integers(1, 7), V=st.integers(4, 7), seed=st.integers(0, 10**6),
       eos_weight=st.integers(0, 9), penalty=st.sampled_from([0.0, 0.6, 1.0]),
       suppress=st.booleans(), with_attention=st.booleans())
def test_batched_beam_search_equals_the_per_row_reference(B, K, n_best, max_len, V, seed,
                                                          eos_weight, penalty, suppress,
                                                          with_attention):
    n_best = min(n_best, K)
    m = _StateModel(V, seed, eos_weight)
    start = torch.randint(0, V, (B,), generator=torch.Generator().manual_seed(seed))
    state = torch.randint(0, 7, (B,), generator=torch.Generator().manual_seed(seed + 1))
    kw = dict(eos_id=EOS, max_len=max_len, beam_size=K, n_best=n_best, length_penalty=penalty,
              suppress=[V - 1] if suppress else None, with_attention=with_attention)
    got = beam_search(m, state, start, **kw)
    want = _reference_beam(m, state, start, **kw)
    assert len(got) == len(want) == B
    for g_row, w_row in zip(got, want, strict=True):
        assert len(g_row) == len(w_row)
        for g, w in zip(g_row, w_row, strict=True):
            assert g.log_prob == pytest.approx(w.log_prob, rel=1e-12, abs=1e-12)
            assert g.score == pytest.approx(w.score, rel=1e-12, abs=1e-12)
            if (g.tokens, g.finished) != (w.tokens, w.finished):
                # Two prefixes that visit the same (token, state) pairs in another order have
                # exactly the same log-probability; the order of such ties is unspecified.
                # Both implementations add the same float64 numbers in the same order per
                # prefix, so a real tie is exact: anything else is a wrong choice.
                assert g.log_prob == w.log_prob
                continue
            if with_attention:
                assert torch.equal(g.attention, w.attention)
            else:
                assert g.attention is None


def test_batched_beam_search_equals_the_reference_on_a_seq2seq_model():
    """Seq2Seq's reorder_state(keep_source=True), which beam search uses while no sentence
    leaves the batch, against the reference that moves every part at every step; sentences
    that settle early leave the batch in some of the seeds."""
    left = 0
    for seed in range(8):
        torch.manual_seed(seed)
        m, src, lengths = _seq2seq()
        with torch.no_grad():
            m.output.bias[EOS] += 0.5  # likelier endings: sentences settle at different steps
        start = torch.full((6,), 2)
        kw = dict(eos_id=EOS, max_len=8, beam_size=3, n_best=2, length_penalty=1.0,
                  with_attention=True)
        rows = []

        class Counting:  # records the rows of every reorder (sentences leaving shrink them)
            decode_step = staticmethod(m.decode_step)

            def reorder_state(self, state, index, keep_source=False, m=m, rows=rows):
                rows.append(index.shape[0])
                return m.reorder_state(state, index, keep_source=keep_source)

        got = beam_search(Counting(), m.init_decoder(src, lengths), start, **kw)
        left += min(rows[1:], default=18) < 18
        want = _reference_beam(m, m.init_decoder(src, lengths), start, **kw)
        for g_row, w_row in zip(got, want, strict=True):
            assert [(h.tokens, h.finished) for h in g_row] == \
                [(h.tokens, h.finished) for h in w_row]
            for g, w in zip(g_row, w_row, strict=True):
                assert g.log_prob == pytest.approx(w.log_prob, rel=1e-5)
                assert torch.allclose(g.attention, w.attention, atol=1e-6)
    assert left >= 1


def test_greedy_rows_that_end_leave_the_batch_without_changing_any_output():
    """Greedy decoding drops ended rows from the batch: each row's output, score and attention
    equal decoding that row alone; sampling keeps all rows (same draws for a generator)."""
    torch.manual_seed(2)
    m, src, lengths = _seq2seq()
    with torch.no_grad():
        m.output.weight[EOS] *= 20  # EOS hangs on the state: some rows end early, some never
    start = torch.full((6,), 2)
    rows = []

    class Counting:
        decode_step = staticmethod(m.decode_step)

        def reorder_state(self, state, index):
            rows.append(index.shape[0])
            return m.reorder_state(state, index)

    batch = greedy_decode(Counting(), m.init_decoder(src, lengths), start, EOS, 9,
                          with_attention=True)
    assert rows and min(rows) < 6  # rows left the batch
    for b, got in enumerate(batch):
        alone = greedy_decode(m, m.init_decoder(src[:lengths[b], b:b + 1], lengths[b:b + 1]),
                              start[:1], EOS, 9, with_attention=True)[0]
        assert (got.tokens, got.finished) == (alone.tokens, alone.finished)
        assert got.log_prob == pytest.approx(alone.log_prob, rel=1e-5, abs=1e-6)
        assert got.score == pytest.approx(alone.score, rel=1e-5, abs=1e-6)
        torch.testing.assert_close(got.attention[:, :lengths[b]], alone.attention,
                                   rtol=1e-5, atol=1e-6)
    rows.clear()
    gen = torch.Generator().manual_seed(0)
    greedy_decode(Counting(), m.init_decoder(src, lengths), start, EOS, 9, temperature=1.0,
                  generator=gen)
    assert rows == []  # sampling never reorders
