"""Reference cells against torch.nn's cells, and the cell protocol itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit.cells import GRUState, LSTMState, RNNState

I, H, B = 3, 5, 2

CELLS = {
    "rnn_tanh": (rk.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (rk.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (rk.LSTMCell, nn.LSTMCell, {}),
    "gru": (rk.GRUCell, nn.GRUCell, {}),
}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch_nn(kind, bias):
    rk_cls, nn_cls, extra = CELLS[kind]
    ref = nn_cls(I, H, bias=bias, **extra).double()
    ours = rk_cls(I, H, bias=bias, **extra).double()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    state = ours.init_state(B)
    state = type(state)(*(torch.randn_like(s) for s in state))
    new = ours(x, tuple(state) if kind == "lstm" else state.h)  # torch.nn's call
    expected = ref(x, tuple(state) if kind == "lstm" else state.h)
    assert type(new) is LSTMState if kind == "lstm" else isinstance(new, torch.Tensor)
    new = new if isinstance(new, tuple) else (new,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for got, want in zip(new, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(sum(s.sum() for s in new), [x, *ours.parameters()])
    g_ref = torch.autograd.grad(sum(s.sum() for s in expected), [x, *ref.parameters()])
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_state_types_and_zero_init():
    assert isinstance(rk.RNNCell(I, H).init_state(B), RNNState)
    h, c = rk.LSTMCell(I, H).init_state(B)
    assert isinstance(rk.LSTMCell(I, H).init_state(B), LSTMState)
    assert isinstance(rk.GRUCell(I, H).init_state(B), GRUState)
    assert h.shape == c.shape == (B, H) and not h.any() and not c.any()


def test_cell_without_state_starts_from_zeros():
    cell = rk.GRUCell(I, H)
    x = torch.randn(B, I)
    torch.testing.assert_close(cell(x), cell(x, cell.init_state(B)))
    torch.testing.assert_close(cell.next_state(x).h, cell(x, torch.zeros(B, H)))


def test_unbatched_step_equals_batched_row():
    cell = rk.LSTMCell(I, H)
    x = torch.randn(B, I)
    batched = cell(x)
    single = cell(x[1])
    torch.testing.assert_close(single.h, batched.h[1])
    torch.testing.assert_close(single.c, batched.c[1])


def test_cell_errors_name_the_problem():
    cell = rk.LSTMCell(I, H)
    with pytest.raises(ValueError, match="input_size=3"):
        cell(torch.randn(B, 4))
    with pytest.raises(TypeError, match="tuple of 2 tensors"):
        cell(torch.randn(B, I), (torch.zeros(B, H),))
    with pytest.raises(ValueError, match=r"'c' must have shape \(2, 5\), got \(3, 5\)"):
        cell(torch.randn(B, I), (torch.zeros(B, H), torch.zeros(3, H)))
    with pytest.raises(TypeError, match="dtype"):
        cell(torch.randn(B, I), (torch.zeros(B, H), torch.zeros(B, H, dtype=torch.float64)))
    with pytest.raises(ValueError, match="nonlinearity"):
        rk.RNNCell(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        rk.GRUCell(I, 0)
