"""Seq2Seq.decode_step as one engine call (csrc/decoder_kernels.cpp) against the same step on
torch.nn's modules: every cell, every attention kind and none, input feeding, padding, both
dtypes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit import engine
from rnnkit.models.seq2seq import Seq2Seq

engine.load_extension()  # the fused step needs the built engine (else decode_step falls back)


def _pair(dtype=torch.float32, **kw):
    """The same weights on the engine (rnnkit backend) and on torch.nn's layers."""
    fused = Seq2Seq(11, 9, **kw, backend="rnnkit").to(dtype).eval()
    plain = Seq2Seq(11, 9, **kw, backend="torch").to(dtype).eval()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell=st.sampled_from(["rnn", "lstm", "gru"]),
       attention=st.sampled_from(["none", "dot", "general", "bahdanau"]),
       feeding=st.booleans(),
       bidirectional=st.booleans(), N=st.integers(1, 6), S=st.integers(1, 5),
       E=st.integers(1, 9), H=st.integers(1, 12), steps=st.integers(1, 3),
       double=st.booleans(), seed=st.integers(0, 10**6))
def test_fused_decode_step_equals_the_modules(cell, attention, feeding, bidirectional, N, S, E,
                                              H, steps, double, seed):
    if attention == "dot" and bidirectional:
        bidirectional = False  # dot scores need the key size to equal the hidden size
    feeding = feeding and attention != "none"
    dtype = torch.float64 if double else torch.float32
    torch.manual_seed(seed)
    fused, plain = _pair(dtype, embedding_size=E, hidden_size=H, cell=cell, attention=attention,
                         input_feeding=feeding, bidirectional=bidirectional)
    src = torch.randint(4, 11, (S, N))
    lengths = torch.randint(1, S + 1, (N,))
    lengths[0] = S  # the source batch's longest row fills it
    tokens = torch.randint(0, 9, (N,))
    tol = dict(rtol=1e-10, atol=1e-12) if double else dict(rtol=2e-5, atol=2e-6)
    with torch.no_grad():
        a, b = fused.init_decoder(src, lengths), plain.init_decoder(src, lengths)
        for _ in range(steps):
            assert fused._fused_step(tokens, a) is not None  # the engine path runs
            la, a, wa = fused.decode_step(tokens, a)
            lb, b, wb = plain.decode_step(tokens, b)
            torch.testing.assert_close(la, lb, **tol)
            for x, y in zip(a.rnn if cell == "lstm" else (a.rnn,),
                            b.rnn if cell == "lstm" else (b.rnn,), strict=True):
                torch.testing.assert_close(x, y, **tol)
            if attention == "none":
                assert wa is None and wb is None
            else:
                torch.testing.assert_close(wa, wb, **tol)
                assert (wa.t()[lengths.unsqueeze(0) <= torch.arange(S).unsqueeze(1)] == 0).all()
            if feeding:
                torch.testing.assert_close(a.feed, b.feed, **tol)
            tokens = la.argmax(-1)


@pytest.mark.parametrize("attention", ["general", "bahdanau"])
def test_many_rows_split_over_threads_equal_the_modules(attention):
    """A beam-sized step (240 rows, 9 source positions, H = 48 with bidirectional keys): the
    attention's rows split over two threads, the step product goes to oneDNN where the machine
    has it; outputs, states and weights as on torch.nn's modules."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(3)
        fused, plain = _pair(embedding_size=16, hidden_size=48, cell="gru", attention=attention,
                             bidirectional=True)
        N, S = 240, 9
        src = torch.randint(4, 11, (S, N))
        lengths = torch.randint(1, S + 1, (N,))
        lengths[0] = S
        tokens = torch.randint(0, 9, (N,))
        with torch.no_grad():
            a, b = fused.init_decoder(src, lengths), plain.init_decoder(src, lengths)
            for _ in range(2):
                la, a, wa = fused.decode_step(tokens, a)
                lb, b, wb = plain.decode_step(tokens, b)
                torch.testing.assert_close(la, lb, rtol=2e-5, atol=2e-6)
                torch.testing.assert_close(a.rnn, b.rnn, rtol=2e-5, atol=2e-6)
                torch.testing.assert_close(wa, wb, rtol=2e-5, atol=2e-6)
                tokens = la.argmax(-1)
    finally:
        torch.set_num_threads(old)


def test_greedy_and_beam_outputs_are_the_modules_outputs():
    from rnnkit.decoding.beam import beam_search
    from rnnkit.decoding.greedy import greedy_decode

    torch.manual_seed(4)
    fused, plain = _pair(embedding_size=6, hidden_size=8, cell="gru", attention="general",
                         bidirectional=True, input_feeding=True)
    src = torch.randint(4, 11, (5, 4))
    lengths = torch.tensor([5, 2, 4, 1])
    start = torch.full((4,), 2)
    for decode in (lambda m: [[h] for h in greedy_decode(m, m.init_decoder(src, lengths),
                                                          start, 3, 8, with_attention=True)],
                   lambda m: beam_search(m, m.init_decoder(src, lengths), start, 3, 8,
                                         beam_size=3, n_best=2, with_attention=True)):
        for ha, hb in zip(decode(fused), decode(plain), strict=True):
            assert [h.tokens for h in ha] == [h.tokens for h in hb]
            for x, y in zip(ha, hb, strict=True):
                assert x.log_prob == pytest.approx(y.log_prob, rel=1e-5, abs=1e-6)
                torch.testing.assert_close(x.attention, y.attention, rtol=1e-5, atol=1e-6)


def test_the_modules_run_where_the_fused_step_does_not_apply():
    torch.manual_seed(0)
    src, lengths, tokens = torch.randint(4, 11, (3, 2)), torch.tensor([3, 2]), torch.tensor([1, 5])
    cases = [dict(attention="general", num_layers=2), dict(attention="bahdanau", num_layers=2)]
    for kw in cases:
        m = Seq2Seq(11, 9, embedding_size=4, hidden_size=6, backend="rnnkit", **kw).eval()
        with torch.no_grad():
            assert m._fused_step(tokens, m.init_decoder(src, lengths)) is None
    m = Seq2Seq(11, 9, embedding_size=4, hidden_size=6, attention="dot", dropout=0.3,
                backend="rnnkit")
    with torch.no_grad():
        state = m.init_decoder(src, lengths)
        assert m._fused_step(tokens, state) is None  # training mode draws dropout
        m.eval()
        assert m._fused_step(tokens, state) is not None
    # recorded by autograd: never the fused step (it has no backward)
    logits, _, _ = m.decode_step(tokens, m.init_decoder(src, lengths))
    assert logits.requires_grad


def test_a_bad_token_gets_the_modules_error_and_the_kernel_names_it():
    m = Seq2Seq(11, 9, embedding_size=4, hidden_size=6, cell="gru", attention="general",
                backend="rnnkit").eval()
    src, lengths = torch.randint(4, 11, (3, 2)), torch.tensor([3, 2])
    with torch.no_grad():
        state = m.init_decoder(src, lengths)
        with pytest.raises(IndexError):
            m.decode_step(torch.tensor([1, 9]), state)  # the embedding's own error
        from rnnkit.layers import _fast
        flat = _fast.kernel_weights(m.decoder)
        with pytest.raises(ValueError, match=r"tokens\[1\] is 9, expected an id in \[0, 9\)"):
            engine.decode_step(engine.CODES[m.decoder.mode], torch.tensor([1, 9]),
                               m.tgt_embedding.weight, torch.empty(0), state.rnn,
                               torch.empty(0), flat, state.memory, state.projected, state.mask,
                               m.combine.weight, torch.empty(0), torch.empty(0),
                               m.output.weight, m.output.bias)
        with pytest.raises(ValueError, match="w_combine has shape"):
            engine.decode_step(engine.CODES[m.decoder.mode], torch.tensor([1, 2]),
                               m.tgt_embedding.weight, torch.empty(0), state.rnn,
                               torch.empty(0), flat, state.memory, state.projected, state.mask,
                               m.combine.weight[:, :-1], torch.empty(0), torch.empty(0),
                               m.output.weight, m.output.bias)
