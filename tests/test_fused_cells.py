"""rk.RNNCell / LSTMCell / GRUCell: one step on the fused engine, with torch.nn.*Cell's contract.

Checked against torch.nn's cells (same weights: outputs and every gradient) and against the
reference equations (`rnnkit.cells`, `engine="reference"`), on generated shapes; float64
gradcheck of the fused backward; the engine really runs (a spy on the kernel call); clear
errors for bad input; the cases the engine leaves to the reference path.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rnnkit as rk
from rnnkit import cells as reference_cells
from rnnkit.export.torch_nn import torch_cell_twin

KINDS = {  # name -> (rk class, torch.nn class, constructor options)
    "rnn_tanh": (rk.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (rk.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (rk.LSTMCell, nn.LSTMCell, {}),
    "gru": (rk.GRUCell, nn.GRUCell, {}),
}
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def _pair(kind: str, I: int, H: int, bias: bool, dtype: torch.dtype, engine: str = "fused"):
    ours_cls, theirs_cls, opts = KINDS[kind]
    ours = ours_cls(I, H, bias=bias, dtype=dtype, engine=engine, **opts)
    theirs = theirs_cls(I, H, bias=bias, dtype=dtype, **opts)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _run(cell: nn.Module, x: torch.Tensor, hx, seed: int):
    """Forward one step, backward a random projection of every output; returns the outputs
    and the gradients of the input, the state and every parameter."""
    x = x.detach().clone().requires_grad_()
    hx = None if hx is None else tuple(h.detach().clone().requires_grad_() for h in hx)
    arg = None if hx is None else (hx if len(hx) == 2 else hx[0])
    out = cell(x, arg)
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    grads = [x.grad] + ([h.grad for h in hx] if hx is not None else [])
    grads += [p.grad for p in cell.parameters()]
    return [o.detach() for o in outs], grads


@settings(deadline=None, max_examples=60)
@given(kind=st.sampled_from(sorted(KINDS)), I=st.integers(1, 9), H=st.integers(1, 40),
       B=st.integers(0, 6), bias=st.booleans(), with_state=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_fused_cells_match_torch_nn_cells_forward_and_every_gradient(
        ext, kind, I, H, B, bias, with_state, dtype, seed):
    torch.manual_seed(seed)
    ours, theirs = _pair(kind, I, H, bias, dtype)
    x = torch.randn(B, I, dtype=dtype) if B else torch.randn(I, dtype=dtype)  # B=0: unbatched
    lead = (B,) if B else ()
    hx = None
    if with_state:
        n = 2 if kind == "lstm" else 1
        hx = tuple(torch.randn(*lead, H, dtype=dtype) for _ in range(n))
    out_a, grads_a = _run(ours, x, hx, seed)
    out_b, grads_b = _run(theirs, x, hx, seed)
    for a, b in zip(out_a + grads_a, out_b + grads_b, strict=True):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_cells_match_the_reference_equations(ext, kind):
    torch.manual_seed(0)
    fused, _ = _pair(kind, 6, 11, True, torch.float64)
    ref, _ = _pair(kind, 6, 11, True, torch.float64, engine="reference")
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(4, 6, dtype=torch.float64)
    hx = tuple(torch.randn(4, 11, dtype=torch.float64) for _ in range(2 if kind == "lstm" else 1))
    out_a, grads_a = _run(fused, x, hx, 1)
    out_b, grads_b = _run(ref, x, hx, 1)
    for a, b in zip(out_a + grads_a, out_b + grads_b, strict=True):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_cell_backward_passes_gradcheck_and_gradgradcheck(ext, kind):
    torch.manual_seed(0)
    cell, _ = _pair(kind, 3, 4, True, torch.float64, engine="fused")
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    fields = 2 if kind == "lstm" else 1
    hx = tuple(torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
               for _ in range(fields))
    params = tuple(cell.parameters())

    def f(x, *rest):
        state = rest[:fields]
        out = cell(x, state if fields == 2 else state[0])
        return out if isinstance(out, tuple) else (out,)

    assert torch.autograd.gradcheck(f, (x, *hx, *params))
    assert torch.autograd.gradgradcheck(f, (x, *hx))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_runs_the_engine_and_auto_and_reference_do_not(ext, kind, monkeypatch):
    import rnnkit.engine as engine

    calls = []
    for name in ("fused_layer", "fused_layer_flat"):  # the general path, the one crossing
        real = getattr(engine, name)
        monkeypatch.setattr(engine, name,
                            lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    fused, _ = _pair(kind, 3, 4, True, torch.float32)
    fused(torch.randn(2, 3))
    assert len(calls) == 1
    for engine_name in ("auto", "reference"):  # auto, recorded by autograd: the equations
        cell, _ = _pair(kind, 3, 4, True, torch.float32, engine=engine_name)
        cell(torch.randn(2, 3))
    assert len(calls) == 1
    auto, ref = _pair(kind, 3, 4, True, torch.float32, engine="auto")
    x = torch.randn(2, 3)
    with torch.no_grad():  # auto, not recorded: the engine, with the equations' results
        got, want = auto(x), ref(x)
        auto.next_state(x)  # the general path (the state protocol) too
    assert len(calls) == 3
    for a, b in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_engine_argument_is_checked_and_fused_names_what_it_cannot_run(ext):
    with pytest.raises(ValueError, match=r"engine must be one of .*'gpu'"):
        rk.LSTMCell(3, 4, engine="gpu")
    proj = rk.LSTMCell(3, 4, proj_size=2, engine="fused")
    with pytest.raises(RuntimeError, match="engine='fused' cannot run this cell.*proj_size=2"):
        proj(torch.randn(2, 3))
    half = rk.GRUCell(3, 4, engine="fused").to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="engine='fused' cannot run this cell"):
        half(torch.randn(2, 3, dtype=torch.bfloat16))
    proj.engine = "auto"  # the reference equations (no projection on the engine)
    h, c = proj(torch.randn(2, 3))
    assert h.shape == (2, 2) and c.shape == (2, 4)


def test_bad_input_gets_the_reference_cells_errors(ext):
    cell = rk.LSTMCell(3, 4, engine="fused")
    with pytest.raises(ValueError, match="input has 5 features.*input_size=3"):
        cell(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"hx field 'c' must have shape \(2, 4\)"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(3, 4)))
    with pytest.raises(TypeError, match="hx field 'h' has dtype torch.float64"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4)))


def test_fused_cells_keep_the_reference_protocol_and_interchange_with_torch_nn(ext):
    cell = rk.GRUCell(3, 4, engine="fused")
    assert isinstance(cell, reference_cells.GRUCell) and isinstance(cell, nn.GRUCell)
    state = cell.next_state(torch.randn(2, 3))
    assert isinstance(state, reference_cells.GRUState)
    twin = torch_cell_twin(cell)
    assert type(twin) is nn.GRUCell
    x = torch.randn(2, 3)
    torch.testing.assert_close(twin(x), cell(x), **TOL[torch.float32])
    clone = pickle.loads(pickle.dumps(rk.LSTMCell(3, 4, engine="reference")))
    assert clone.engine == "reference"
    assert "engine='reference'" in repr(clone)
