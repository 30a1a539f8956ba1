"""Layer behaviour beyond torch.nn parity: gradcheck, chunking, lengths and clear errors."""

from __future__ import annotations

import pytest
import torch
from parity import KINDS, assert_same, forward_backward

import rnnkit as rk

T, B, I, H = 4, 2, 3, 5


def _layer(kind: str, **kwargs):
    rk_cls, _, extra = KINDS[kind]
    return rk_cls(I, H, **extra, **kwargs, engine="reference").double()


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(kind):
    layer = _layer(kind, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    names, params = zip(*layer.named_parameters(), strict=True)

    def fn(x, *ps):
        out, state = torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,))
        return out, *(state if isinstance(state, tuple) else (state,))

    assert torch.autograd.gradcheck(fn, (x, *params))


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_with_lengths_and_state(kind):
    layer = _layer(kind, bidirectional=True)
    x = torch.randn(T, 3, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, 4, 1])

    def fn(x, h):
        hx = (h, h * 0.5) if kind == "lstm" else h
        out, state = layer(x, hx, lengths=lengths)
        return out, *(state if isinstance(state, tuple) else (state,))

    assert torch.autograd.gradcheck(fn, (x, h))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("split", [1, 3])
def test_two_chunks_with_carried_state_equal_one_pass(kind, split):
    layer = _layer(kind, num_layers=2)
    x = torch.randn(6, B, I, dtype=torch.float64)
    whole, state_whole = layer(x)
    first, state = layer(x[:split])
    second, state_end = layer(x[split:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-12, atol=1e-12)
    for a, b in zip(state_end if isinstance(state_end, tuple) else (state_end,),
                    state_whole if isinstance(state_whole, tuple) else (state_whole,),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_equal_running_each_sequence_alone(kind):
    layer = _layer(kind, num_layers=2, bidirectional=True)
    x = torch.randn(T, 3, I, dtype=torch.float64)
    lengths = torch.tensor([3, 1, 4])
    out, state = layer(x, lengths=lengths)
    states = state if isinstance(state, tuple) else (state,)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = layer(x[:n, b])  # unbatched, exactly n steps
        torch.testing.assert_close(out[:n, b], alone, rtol=1e-12, atol=1e-12)
        assert not out[n:, b].any()
        alone_states = alone_state if isinstance(alone_state, tuple) else (alone_state,)
        for s, a in zip(states, alone_states, strict=True):
            torch.testing.assert_close(s[:, b], a, rtol=1e-12, atol=1e-12)


def test_full_lengths_equal_no_lengths():
    layer = _layer("lstm", bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.testing.assert_close(layer(x, lengths=torch.tensor([T, T]))[0], layer(x)[0])


def test_engine_argument():
    assert rk.LSTM(I, H).engine == "auto"
    with pytest.raises(ValueError, match="engine must be one of"):
        rk.LSTM(I, H, engine="cuda")
    layer = rk.GRU(I, H, engine="reference")
    layer.engine = "auto"
    assert layer(torch.randn(T, B, I))[0].shape == (T, B, H)


class TestErrors:
    def test_wrong_rank(self):
        with pytest.raises(ValueError, match="3-D .* or 2-D .*got 4-D"):
            rk.LSTM(I, H)(torch.randn(1, T, B, I))

    def test_wrong_feature_size(self):
        with pytest.raises(ValueError, match="4 features per step.*input_size=3"):
            rk.GRU(I, H)(torch.randn(T, B, 4))

    def test_non_float_input(self):
        with pytest.raises(TypeError, match="floating-point.*torch.int64"):
            rk.RNN(I, H)(torch.ones(T, B, I, dtype=torch.long))

    def test_dtype_mismatch(self):
        with pytest.raises(TypeError, match="float64.*float32"):
            rk.RNN(I, H)(torch.ones(T, B, I, dtype=torch.float64))

    def test_hx_wrong_shape(self):
        with pytest.raises(ValueError, match=r"hx must have shape \(2, 2, 5\).*got \(1, 2, 5\)"):
            rk.GRU(I, H, num_layers=2)(torch.randn(T, B, I), torch.zeros(1, B, H))

    def test_lstm_hx_not_a_tuple(self):
        with pytest.raises(TypeError, match="tuple of 2 tensors"):
            rk.LSTM(I, H)(torch.randn(T, B, I), torch.zeros(1, B, H))

    def test_lstm_cell_state_wrong_shape(self):
        with pytest.raises(ValueError, match=r"hx\[1\] must have shape \(1, 2, 5\)"):
            rk.LSTM(I, H)(torch.randn(T, B, I), (torch.zeros(1, B, H), torch.zeros(1, B, 4)))

    @pytest.mark.parametrize("lengths,match", [
        ([5, 2], r"lengths must lie in \[1, T=4\], got values from 2 to 5"),
        ([0, 2], r"lengths must lie in \[1, T=4\], got values from 0 to 2"),
        ([2], r"one length per sequence \(B=2\)"),
    ])
    def test_bad_lengths(self, lengths, match):
        with pytest.raises(ValueError, match=match):
            rk.LSTM(I, H)(torch.randn(T, B, I), lengths=torch.tensor(lengths))

    def test_float_lengths(self):
        with pytest.raises(TypeError, match="lengths must be an integer tensor"):
            rk.LSTM(I, H)(torch.randn(T, B, I), lengths=torch.tensor([1.0, 2.0]))

    def test_lengths_with_packed_input(self):
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(T, B, I), [4, 2])
        with pytest.raises(ValueError, match="PackedSequence"):
            rk.LSTM(I, H)(packed, lengths=torch.tensor([4, 2]))

    @pytest.mark.parametrize("kwargs,match", [
        ({"num_layers": 0}, "num_layers must be a positive int, got 0"),
        ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\], got 1.5"),
        ({"hidden_size": -1}, "hidden_size must be a positive int, got -1"),
    ])
    def test_bad_config(self, kwargs, match):
        args = {"input_size": I, "hidden_size": H, **kwargs}
        with pytest.raises(ValueError, match=match):
            rk.GRU(**args)

    def test_bad_projection(self):
        with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size=5"):
            rk.LSTM(I, H, proj_size=5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_torch_engine_equals_reference(kind, with_lengths):
    """engine="torch" (used on CUDA) runs the same parameters through torch.nn's kernels."""
    rk_cls, _, extra = KINDS[kind]
    ref = rk_cls(I, H, num_layers=2, bidirectional=True, **extra, engine="reference").double()
    delegated = rk_cls(I, H, num_layers=2, bidirectional=True, **extra, engine="torch").double()
    delegated.load_state_dict(ref.state_dict())
    x = torch.randn(T, 3, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, 4, 1]) if with_lengths else None
    assert_same(forward_backward(delegated, x, lengths=lengths),
                forward_backward(ref, x, lengths=lengths), torch.float64)
