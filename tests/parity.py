"""Helpers that run a layer forward and backward and compare every result between two layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

import rnnkit as rk

# (rk class, torch.nn class, extra constructor arguments); RNN appears once per nonlinearity.
KINDS: dict[str, tuple[type, type, dict[str, Any]]] = {
    "rnn_tanh": (rk.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rk.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rk.LSTM, nn.LSTM, {}),
    "gru": (rk.GRU, nn.GRU, {}),
}

TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


def make_hx(layer: nn.Module, B: int, dtype: torch.dtype, unbatched: bool = False) -> Any:
    """A random initial state of the right structure for `layer` (torch.nn or rnnkit)."""
    LD = layer.num_layers * (2 if layer.bidirectional else 1)
    lead = (LD,) if unbatched else (LD, B)
    h_size = getattr(layer, "proj_size", 0) or layer.hidden_size
    h = torch.randn(*lead, h_size, dtype=dtype, requires_grad=True)
    if isinstance(layer, (nn.LSTM, rk.LSTM)):
        return (h, torch.randn(*lead, layer.hidden_size, dtype=dtype, requires_grad=True))
    return h


def _leaves(hx: Any) -> list[Tensor]:
    if hx is None:
        return []
    return list(hx) if isinstance(hx, tuple) else [hx]


def forward_backward(layer: nn.Module, x: Any, hx: Any = None, **kwargs: Any) -> dict[str, Tensor]:
    """Outputs, final states and the gradient of a fixed random loss w.r.t. every input."""
    layer.zero_grad(set_to_none=True)
    inp = x.data if isinstance(x, PackedSequence) else x
    for t in [inp, *_leaves(hx)]:
        t.grad = None
    out, state = layer(x, hx, **kwargs)
    out_t = out.data if isinstance(out, PackedSequence) else out
    states = list(state) if isinstance(state, tuple) else [state]
    g = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum()
               for t in [out_t, *states])
    loss.backward()
    results = {"output": out_t.detach().clone()}
    results.update({f"state{i}": s.detach().clone() for i, s in enumerate(states)})
    results["grad_input"] = inp.grad.clone()
    results.update({f"grad_hx{i}": t.grad.clone() for i, t in enumerate(_leaves(hx))})
    results.update({f"grad_{n}": p.grad.clone() for n, p in layer.named_parameters()})
    return results


def assert_same(a: dict[str, Tensor], b: dict[str, Tensor], dtype: torch.dtype,
                atol: float | None = None) -> None:
    """Every entry within TOL, the absolute part scaled by the entry's largest magnitude.

    A weight gradient sums T*B products, so both engines' float32 results carry rounding of
    order 1e-7 of the gradient's scale; an element that cancels to far below that scale (0.05
    in a gradient of magnitude 15) cannot meet 1e-5 relative to itself in either engine, while
    1e-6 of the gradient's scale still catches any real difference.
    """
    assert a.keys() == b.keys()
    for key in a:
        tol = dict(TOL[dtype])
        if atol is not None:
            tol["atol"] = atol
        if b[key].numel():
            tol["atol"] *= max(1.0, b[key].abs().max().item())
        torch.testing.assert_close(a[key], b[key], **tol, msg=lambda m, k=key: f"{k}: {m}")


def gradcheck_layer(layer: nn.Module, x: Tensor, lengths: Tensor) -> bool:
    """gradcheck of outputs and final states w.r.t. x, a random initial state and every weight."""
    names = [n for n, _ in layer.named_parameters()]
    hx = make_hx(layer, x.shape[1], x.dtype)
    states = list(hx) if isinstance(hx, tuple) else [hx]
    n_states = len(states)

    def run(x, *rest):
        st, params = rest[:n_states], rest[n_states:]
        h = tuple(st) if n_states == 2 else st[0]
        weights = dict(zip(names, params, strict=True))
        out, state = torch.func.functional_call(layer, weights, (x, h), {"lengths": lengths})
        return (out, *state) if isinstance(state, tuple) else (out, state)

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    return torch.autograd.gradcheck(run, (x, *states, *params), atol=1e-7, rtol=1e-5)


def gradcheck_one_layer(kind: str, hidden: int, lengths: list[int]) -> bool:
    """`gradcheck_layer` of a one-layer float64 `kind` (I = 3) over a batch with these lengths."""
    cls, _, extra = KINDS[kind]
    layer = cls(3, hidden, **extra, engine="fused").double()
    x = torch.randn(max(lengths), len(lengths), 3, dtype=torch.float64, requires_grad=True)
    return gradcheck_layer(layer, x, torch.tensor(lengths))


def assert_stack_matches_reference(kind: str, dtype: torch.dtype, hidden: int,
                                   lengths: list[int], *, training: bool = True,
                                   **kwargs: Any) -> None:
    """A 2-layer bidirectional stack (I = 9) with an initial state and `lengths`, fused against
    reference: outputs, states and every gradient (training), and the no_grad outputs and
    final states (the inference path, which keeps nothing for a backward)."""
    cls, _, extra = KINDS[kind]
    fused = cls(9, hidden, **extra, num_layers=2, bidirectional=True, **kwargs,
                engine="fused").to(dtype)
    ref = cls(9, hidden, **extra, num_layers=2, bidirectional=True, **kwargs,
              engine="reference").to(dtype)
    ref.load_state_dict(fused.state_dict())
    batch = len(lengths)
    x = torch.randn(max(lengths), batch, 9, dtype=dtype, requires_grad=True)
    hx = make_hx(ref, batch, dtype)
    forward_kwargs = {"lengths": torch.tensor(lengths)}
    if training:
        assert_same(forward_backward(fused, x, hx, **forward_kwargs),
                    forward_backward(ref, x, hx, **forward_kwargs), dtype)
    with torch.no_grad():
        out_fused, state_fused = fused(x, hx, **forward_kwargs)
        out_ref, state_ref = ref(x, hx, **forward_kwargs)
    torch.testing.assert_close(out_fused, out_ref, **TOL[dtype])
    torch.testing.assert_close(state_fused, state_ref, **TOL[dtype])
