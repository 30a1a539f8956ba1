"""layer.step: an unbounded stream fed one step at a time equals the whole-sequence forward."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk


@pytest.mark.parametrize("make", [
    lambda: rk.LSTM(3, 6, num_layers=2), lambda: rk.GRU(3, 6, batch_first=True),
    lambda: rk.RNN(3, 6), lambda: rk.LayerNormLSTM(3, 6), lambda: rk.SkipRNN(3, 6, delays=(1, 3)),
    lambda: rk.LSTM(3, 6, engine="reference"),
], ids=["lstm", "gru_batch_first", "rnn", "layernorm_lstm", "skip", "reference"])
def test_ten_thousand_steps_equal_one_forward(make):
    layer = make().double().eval()
    T, B = 10_000, 2
    x = torch.randn(T, B, 3, dtype=torch.float64)
    with torch.no_grad():
        whole, final = layer(x.transpose(0, 1) if layer.batch_first else x)
        if layer.batch_first:
            whole = whole.transpose(0, 1)
        state, outs = None, []
        for t in range(T):
            y, state = layer.step(x[t], state)
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs), whole, rtol=1e-9, atol=1e-10)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    final if isinstance(final, tuple) else (final,), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_step_is_unbatched_too_and_refuses_what_cannot_stream():
    layer = rk.GRU(3, 4).eval()
    y, h = layer.step(torch.randn(3))
    assert y.shape == (4,) and h.shape == (1, 4)
    with pytest.raises(ValueError, match="bidirectional"):
        rk.LSTM(3, 4, bidirectional=True).step(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"one step, \(B, I\) or \(I,\), got \(5, 2, 3\)"):
        layer.step(torch.randn(5, 2, 3))


def test_stepping_with_gradients_matches_the_sequence_gradients():
    layer = rk.LSTM(3, 4).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    whole = layer(x)[0]
    g_whole = torch.autograd.grad(whole.sum(), [x, *layer.parameters()])
    state, outs = None, []
    for t in range(6):
        y, state = layer.step(x[t], state)
        outs.append(y)
    g_steps = torch.autograd.grad(torch.stack(outs).sum(), [x, *layer.parameters()])
    for a, b in zip(g_steps, g_whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
