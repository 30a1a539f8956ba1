"""The one-crossing path of a layer call (rnnkit/layers/_fast.py): taken where it should be,
bitwise equal to the general path (same kernel call) in outputs and every gradient, and
leaving bad input to the general path's errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rnnkit as rk
from rnnkit.layers import _fast

LAYERS = {"rnn": rk.RNN, "lstm": rk.LSTM, "gru": rk.GRU}


@pytest.fixture(autouse=True)
def _engine_loaded():
    """The path needs the engine loaded (a process's first call loads it, on the general
    path)."""
    assert rk.engine.load_extension() is not None


@pytest.fixture
def taken(monkeypatch):
    """Counts the calls that the one-crossing path finished (not None)."""
    calls = {"done": 0}
    real = _fast.forward

    def spy(layer, input, hx):
        out = real(layer, input, hx)
        calls["done"] += out is not None
        return out

    monkeypatch.setattr(_fast, "forward", spy)
    return calls


def _run(layer, x, hx, lengths=None):
    layer.zero_grad()
    x = x.detach().requires_grad_()
    if hx is not None:
        hx = tuple(h.detach().requires_grad_() for h in hx) if isinstance(hx, tuple) \
            else hx.detach().requires_grad_()
    out, state = layer(x, hx, lengths=lengths)
    fields = state if isinstance(state, tuple) else (state,)
    loss = (out ** 2).sum() + sum((f * (i + 2)).sum() for i, f in enumerate(fields))
    loss.backward()
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    if hx is not None:
        grads += [h.grad for h in (hx if isinstance(hx, tuple) else (hx,))]
    return [out, *fields, *grads]


@given(kind=st.sampled_from(sorted(LAYERS)), T=st.integers(1, 4), B=st.integers(1, 5),
       H=st.integers(1, 9), bidirectional=st.booleans(), batch_first=st.booleans(),
       with_hx=st.booleans(), double=st.booleans())
def test_fast_path_equals_general_path(kind, T, B, H, bidirectional, batch_first, with_hx,
                                       double):
    """lengths= of full length sends a call down the general path (prepare drops it), so the
    same call both ways must agree to the bit."""
    torch.manual_seed(0)
    dtype = torch.float64 if double else torch.float32
    layer = LAYERS[kind](3, H, bidirectional=bidirectional, batch_first=batch_first,
                         dtype=dtype)
    x = torch.randn((B, T, 3) if batch_first else (T, B, 3), dtype=dtype)
    D = 2 if bidirectional else 1
    hx = None
    if with_hx:
        hx = torch.randn(D, B, H, dtype=dtype)
        if kind == "lstm":
            hx = (hx, torch.randn(D, B, H, dtype=dtype))
    assert _fast.forward(layer, x, hx) is not None
    fast = _run(layer, x, hx)
    general = _run(layer, x, hx, lengths=torch.full((B,), T))
    for a, b in zip(fast, general, strict=True):
        assert torch.equal(a, b)


def test_decoder_step_calls_take_the_fast_path(taken):
    lstm = rk.LSTM(4, 8)
    state = None
    with torch.no_grad():
        for _ in range(5):
            _, state = lstm(torch.randn(1, 2, 4), state)
    assert taken["done"] == 5


@pytest.mark.parametrize("layer", [
    rk.LSTM(3, 4, num_layers=2), rk.LSTM(3, 4, bias=False), rk.LSTM(3, 4, proj_size=2),
    rk.GRU(3, 4, engine="reference"), rk.IRNN(3, 4), rk.LSTM(3, 4, zoneout=0.1),
    rk.LayerNormLSTM(3, 4),
], ids=["two-layers", "no-bias", "projection", "reference", "irnn", "zoneout", "layernorm"])
def test_other_layers_take_the_general_path(layer):
    assert _fast.forward(layer, torch.randn(2, 1, 3), None) is None


@pytest.mark.parametrize(("hx", "error", "match"), [
    (torch.zeros(1, 3, 4), ValueError, r"hx must have shape \(1, 2, 4\)"),
    (torch.zeros(1, 2, 4, dtype=torch.float64), TypeError, "hx has dtype torch.float64"),
])
def test_bad_state_gets_the_general_paths_error(hx, error, match, taken):
    gru = rk.GRU(3, 4)
    with pytest.raises(error, match=match):
        gru(torch.randn(5, 2, 3), hx)
    assert taken["done"] == 0


def test_bad_input_gets_the_general_paths_error():
    with pytest.raises(ValueError, match="input has 5 features per step"):
        rk.LSTM(3, 4)(torch.randn(2, 1, 5))
    with pytest.raises(TypeError, match="hx must be a tuple of 2 tensors"):
        rk.LSTM(3, 4)(torch.randn(2, 1, 3), torch.zeros(1, 1, 4))


def test_replaced_parameter_is_used():
    """Assigning a new Parameter (as weight-sharing code does) reaches the kernels: torch.nn's
    flat list follows the assignment."""
    torch.manual_seed(0)
    rnn = rk.RNN(3, 4)
    x = torch.randn(2, 1, 3)
    before = rnn(x)[0]
    rnn.weight_hh_l0 = torch.nn.Parameter(torch.zeros(4, 4))
    after = rnn(x)[0]
    ref = rk.RNN(3, 4, engine="reference")
    ref.load_state_dict(rnn.state_dict())
    torch.testing.assert_close(after, ref(x)[0])
    assert not torch.equal(before, after)


@given(kind=st.sampled_from(sorted(LAYERS)), T=st.integers(1, 4), B=st.integers(1, 9),
       H=st.integers(1, 20), bidirectional=st.booleans(), ragged=st.booleans(),
       keep=st.booleans(), seed=st.integers(0, 2**16))
def test_kernels_take_an_empty_state_as_zeros(kind, T, B, H, bidirectional, ragged, keep, seed):
    """The kernels' zero state (what an inference call without hx passes): an empty h0 and
    c0 give what zeros give (the first step then skips its product with W_hh), one step or
    more, either direction, with sequences of different lengths; an empty h0 with a real c0 is
    refused, naming both."""
    torch.manual_seed(seed)
    layer = LAYERS[kind](5, H, bidirectional=bidirectional)
    flat = layer._flat_weights
    code = rk.engine.CODES[layer.mode]
    D = 2 if bidirectional else 1
    x = torch.randn(T, B, 5)
    lengths = (torch.randint(1, T + 1, (B,)) if ragged else torch.empty(0)).to(torch.int64)
    empty = torch.empty(0)
    zeros = torch.zeros(D, B, H)
    lstm = kind == "lstm"
    ext = rk.engine.load_extension()
    with torch.no_grad():
        got = ext.layer_forward(code, x, empty, empty, list(flat), lengths, keep)
        want = ext.layer_forward(code, x, zeros, zeros if lstm else empty, list(flat), lengths,
                                 keep)
    assert len(got) == len(want)
    # out, h_n, c_n, and (keep) what the backward reads, whose rows past a sequence's end are
    # never written: compared where every row runs every step
    for a, b in zip(got[:3] if ragged else got, want[:3] if ragged else want, strict=True):
        assert torch.equal(a, b)
    if lstm:
        with pytest.raises(ValueError, match=r"h0 is empty \(a zero state\) but c0 has shape"):
            rk.engine.fused_layer_flat(code, x, empty, zeros, flat, None)
