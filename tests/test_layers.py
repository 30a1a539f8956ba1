"""rk.RNN / rk.LSTM / rk.GRU against torch.nn: same weights give the same outputs and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from parity import KINDS, assert_same, forward_backward, make_hx
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit as rk

T, B, I, H = 4, 2, 3, 5
DTYPES = [torch.float32, torch.float64]


def _pair(kind: str, dtype: torch.dtype, **kwargs):
    rk_cls, nn_cls, extra = KINDS[kind]
    ref = nn_cls(I, H, **extra, **kwargs).to(dtype)
    ours = rk_cls(I, H, **extra, **kwargs, engine="reference").to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


GRID = list(itertools.product(KINDS, [1, 2, 3], [False, True], [False, True], [False, True],
                              [False, True]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind,layers,bidir,batch_first,bias,with_hx", GRID)
def test_matches_torch_nn(kind, layers, bidir, batch_first, bias, with_hx, dtype):
    ours, ref = _pair(kind, dtype, num_layers=layers, bidirectional=bidir,
                      batch_first=batch_first, bias=bias)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(*shape, dtype=dtype, requires_grad=True)
    hx = make_hx(ref, B, dtype) if with_hx else None
    assert_same(forward_backward(ours, x, hx), forward_backward(ref, x, hx), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, True), (3, True)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_packed_sequence_matches_torch_nn(kind, layers, bidir, with_hx, dtype):
    ours, ref = _pair(kind, dtype, num_layers=layers, bidirectional=bidir)
    lengths = torch.tensor([2, 4, 1])  # unsorted on purpose
    padded = torch.randn(T, 3, I, dtype=dtype)
    packed = pack_padded_sequence(padded, lengths, enforce_sorted=False)
    data = packed.data.detach().requires_grad_()
    x = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    hx = make_hx(ref, 3, dtype) if with_hx else None
    ours_out, _ = ours(x, hx)
    assert isinstance(ours_out, PackedSequence)
    assert torch.equal(ours_out.batch_sizes, packed.batch_sizes)
    assert torch.equal(ours_out.sorted_indices, packed.sorted_indices)
    assert_same(forward_backward(ours, x, hx), forward_backward(ref, x, hx), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir,batch_first", [(1, False, False), (2, True, True),
                                                      (3, True, False), (1, True, True)])
def test_lengths_match_packed_torch_nn(kind, layers, bidir, batch_first, dtype):
    """`lengths=` gives torch.nn's packed results: zero outputs past each length."""
    ours, ref = _pair(kind, dtype, num_layers=layers, bidirectional=bidir,
                      batch_first=batch_first)
    lengths = torch.tensor([3, 4, 1])
    shape = (3, T, I) if batch_first else (T, 3, I)
    x = torch.randn(*shape, dtype=dtype, requires_grad=True)
    hx = make_hx(ref, 3, dtype)
    got = forward_backward(ours, x, hx, lengths=lengths)

    x_ref = x.detach().clone().requires_grad_()
    packed = pack_padded_sequence(x_ref, lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = ref(packed, hx)
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first,
                                                       total_length=T)
    assert_same({"output": got["output"]}, {"output": padded.detach()}, dtype)
    states = state if isinstance(state, tuple) else (state,)
    for i, s in enumerate(states):
        torch.testing.assert_close(got[f"state{i}"], s.detach())
    # Gradients of the same loss through torch.nn's packed path.
    g = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=dtype)).sum()
               for t in [padded, *states])
    for t in [x_ref, *(hx if isinstance(hx, tuple) else (hx,))]:
        t.grad = None
    ref.zero_grad()
    loss.backward()
    torch.testing.assert_close(got["grad_input"], x_ref.grad)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[f"grad_{name}"], p.grad, msg=name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_hx", [False, True])
def test_unbatched_matches_torch_nn(kind, with_hx):
    ours, ref = _pair(kind, torch.float64, num_layers=2, bidirectional=True)
    x = torch.randn(T, I, dtype=torch.float64, requires_grad=True)
    hx = make_hx(ref, 1, torch.float64, unbatched=True) if with_hx else None
    assert_same(forward_backward(ours, x, hx), forward_backward(ref, x, hx), torch.float64)


@pytest.mark.parametrize("bidir", [False, True])
def test_lstm_projection_matches_torch_nn(bidir):
    ours, ref = _pair("lstm", torch.float64, num_layers=2, bidirectional=bidir, proj_size=2)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    hx = make_hx(ref, B, torch.float64)
    assert_same(forward_backward(ours, x, hx), forward_backward(ref, x, hx), torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_loads_both_ways(kind):
    rk_cls, nn_cls, extra = KINDS[kind]
    ours = rk_cls(I, H, num_layers=2, bidirectional=True, **extra)
    ref = nn_cls(I, H, num_layers=2, bidirectional=True, **extra)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(T, B, I)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_default_init_matches_torch_nn_distribution(kind):
    """Every parameter starts uniform in (-1/sqrt(H), 1/sqrt(H)), like torch.nn."""
    rk_cls, _, extra = KINDS[kind]
    layer = rk_cls(I, 64, num_layers=2, **extra)
    bound = 64 ** -0.5
    for name, p in layer.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.9 * bound, name  # really spread over the interval


def test_dropout_applies_between_layers_only_in_training():
    lstm = rk.LSTM(I, H, num_layers=2, dropout=0.5)
    x = torch.randn(T, B, I)
    lstm.train()
    a, b = lstm(x)[0], lstm(x)[0]
    assert not torch.allclose(a, b)  # fresh masks each call
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], lstm(x)[0])


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        rk.GRU(I, H, dropout=0.3)
