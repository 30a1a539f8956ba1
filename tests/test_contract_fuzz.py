"""The torch.nn contract under generated inputs: rk.RNN / LSTM / GRU and the three cells against
torch.nn over the whole argument space, every engine; the variants' fused kernels against their
reference. `RNNKIT_FUZZ=long pytest tests/test_contract_fuzz.py` runs the long profile."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity import KINDS, assert_same
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk

settings.register_profile("ci", max_examples=75, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=1500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("RNNKIT_FUZZ", "ci")
settings.load_profile(PROFILE)

FORMS = ("padded", "unbatched", "packed_sorted", "packed_unsorted", "lengths")


@dataclass
class Case:
    """One generated layer call: constructor arguments, input form and sizes, engine."""

    kind: str
    ctor: dict[str, Any]
    dtype: torch.dtype
    form: str
    T: int
    lengths: list[int]
    with_hx: bool
    layout: str  # "contiguous", "strided" (a non-contiguous view) or "expanded" (stride 0)
    engine: str
    training: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(sorted(KINDS)))
    H = draw(st.integers(1, 6))
    ctor = {"input_size": draw(st.integers(1, 5)), "hidden_size": H,
            "num_layers": draw(st.integers(1, 3)), "bias": draw(st.booleans()),
            "batch_first": draw(st.booleans()), "bidirectional": draw(st.booleans())}
    if ctor["num_layers"] > 1:  # (torch.nn warns about dropout on one layer)
        ctor["dropout"] = draw(st.sampled_from([0.0, 0.0, 0.4]))
    if kind == "lstm" and H > 1 and draw(st.booleans()):
        ctor["proj_size"] = draw(st.integers(1, H - 1))
    form = draw(st.sampled_from(FORMS))
    T = draw(st.integers(1, 6))
    B = 1 if form == "unbatched" else draw(st.integers(1, 4))
    if form == "padded" or draw(st.booleans()) is False:
        lengths = [T] * B  # every sequence full length (the case that once broke packing)
    else:
        lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
        lengths[draw(st.integers(0, B - 1))] = T  # torch.nn's packed T is the longest one
    if form == "packed_sorted":
        lengths.sort(reverse=True)
    engines = ["auto", "reference", "torch"] + ([] if "proj_size" in ctor else ["fused"])
    # Inter-layer dropout draws torch.nn's masks for padded input; on packed input torch.nn
    # draws over the packed rows, rnnkit over the padded (T, B, H) block (documented).
    training = draw(st.booleans()) and (not ctor.get("dropout") or form in ("padded",
                                                                              "unbatched"))
    return Case(kind, ctor, draw(st.sampled_from([torch.float32, torch.float64])), form, T,
                lengths, draw(st.booleans()),
                draw(st.sampled_from(["contiguous", "strided", "expanded"])),
                draw(st.sampled_from(engines)), training)


def _input(case: Case, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The leaf that gradients reach, and the (T, B, I) or (T, I) tensor made from it."""
    I, B = case.ctor["input_size"], len(case.lengths)
    shape = (case.T, I) if case.form == "unbatched" else (case.T, B, I)
    if case.layout == "expanded":  # the same step for every batch row: stride 0
        leaf = torch.randn(case.T, 1, I, generator=gen, dtype=case.dtype).requires_grad_()
        x = leaf.expand(case.T, B, I) if case.form != "unbatched" else leaf[:, 0]
    elif case.layout == "strided":  # every other feature of a wider tensor
        leaf = torch.randn(*shape[:-1], 2 * I, generator=gen, dtype=case.dtype).requires_grad_()
        x = leaf[..., ::2]
    else:
        leaf = torch.randn(*shape, generator=gen, dtype=case.dtype).requires_grad_()
        x = leaf
    return leaf, x


def _call(layer: nn.Module, case: Case, x: Tensor, hx: Any, rnnkit: bool) -> tuple[Tensor, Any]:
    """Run `layer` on the case's input form; returns a padded (T, B, *) output and the state."""
    lengths = torch.tensor(case.lengths)
    kwargs = {"lengths": lengths} if case.form == "lengths" and rnnkit else {}
    if case.form in ("padded", "unbatched") or kwargs:
        if case.ctor["batch_first"] and case.form != "unbatched":
            out, state = layer(x.transpose(0, 1), hx, **kwargs)
            return out.transpose(0, 1), state
        return layer(x, hx, **kwargs)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=case.form == "packed_sorted")
    out, state = layer(packed, hx)
    return pad_packed_sequence(out, total_length=case.T)[0], state


def _state_sizes(layer: nn.Module, case: Case) -> tuple[int, ...]:
    cell_cls = getattr(layer, "cell_cls", None)
    if cell_cls is not None:  # rnnkit: the cell knows (the skip RNN's past is (K-1)*H)
        return cell_cls.state_sizes(layer.hidden_size, **layer.cell_options)
    h = case.ctor.get("proj_size") or case.ctor["hidden_size"]
    return (h, case.ctor["hidden_size"]) if case.kind == "lstm" else (h,)


def _results(layer: nn.Module, case: Case, seed: int, rnnkit: bool) -> dict[str, Tensor]:
    """Output, final state and the gradients of a fixed random loss w.r.t. everything."""
    gen = torch.Generator().manual_seed(seed)
    leaf, x = _input(case, gen)
    L = case.ctor["num_layers"] * (2 if case.ctor["bidirectional"] else 1)
    lead = (L,) if case.form == "unbatched" else (L, len(case.lengths))
    hx: Any = None
    leaves = [leaf]
    if case.with_hx:
        sizes = _state_sizes(layer, case)
        fields = [torch.randn(*lead, n, generator=gen, dtype=case.dtype).requires_grad_()
                  for n in sizes]
        hx = tuple(fields) if len(fields) > 1 else fields[0]
        leaves += fields
    layer.train(case.training)
    torch.manual_seed(seed)  # inter-layer dropout: both libraries draw from this generator
    out, state = _call(layer, case, x, hx, rnnkit)
    states = list(state) if isinstance(state, tuple) else [state]
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum()
               for t in [out, *states])
    grads = torch.autograd.grad(loss, leaves + list(layer.parameters()))
    names = [f"grad_leaf{i}" for i in range(len(leaves))]
    names += [f"grad_{n}" for n, _ in layer.named_parameters()]
    results = {"output": out.detach(), **{f"state{i}": s.detach() for i, s in enumerate(states)}}
    results.update(zip(names, grads, strict=True))
    return results


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@settings(max_examples=settings().max_examples * 2)
@given(case=cases(), seed=st.integers(0, 2**16))
def test_layers_match_torch_nn(case: Case, seed: int) -> None:
    rk_cls, nn_cls, extra = KINDS[case.kind]
    ctor = {**case.ctor, **extra, "dtype": case.dtype}
    theirs = nn_cls(**ctor)
    ours = rk_cls(**ctor, engine=case.engine)
    ours.load_state_dict(theirs.state_dict())
    assert_same(_results(ours, case, seed, True), _results(theirs, case, seed, False),
                case.dtype)


CELLS = {"rnn_tanh": (rk.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
         "rnn_relu": (rk.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
         "lstm": (rk.LSTMCell, nn.LSTMCell, {}), "gru": (rk.GRUCell, nn.GRUCell, {})}


@given(kind=st.sampled_from(sorted(CELLS)), I=st.integers(1, 5), H=st.integers(1, 6),
       B=st.integers(0, 3), bias=st.booleans(), with_hx=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_cells_match_torch_nn(kind: str, I: int, H: int, B: int, bias: bool, with_hx: bool,
                              dtype: torch.dtype, seed: int) -> None:
    """B = 0 stands for an unbatched call: x (I,), hx (H,)."""
    rk_cls, nn_cls, extra = CELLS[kind]
    theirs = nn_cls(I, H, bias=bias, dtype=dtype, **extra)
    ours = rk_cls(I, H, bias=bias, dtype=dtype, **extra)
    ours.load_state_dict(theirs.state_dict())
    gen = torch.Generator().manual_seed(seed)
    lead = (B,) if B else ()
    x = torch.randn(*lead, I, generator=gen, dtype=dtype, requires_grad=True)
    hx: Any = None
    leaves = [x]
    if with_hx:
        fields = [torch.randn(*lead, H, generator=gen, dtype=dtype, requires_grad=True)
                  for _ in range(2 if kind == "lstm" else 1)]
        hx = tuple(fields) if kind == "lstm" else fields[0]
        leaves += fields
    results = []
    for cell in (ours, theirs):
        new = cell(x, hx)
        assert isinstance(new, tuple) == (kind == "lstm")  # torch.nn's result types
        outs = list(new) if isinstance(new, tuple) else [new]
        loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=dtype).view(o.shape)).sum()
                   for o in outs)
        grads = torch.autograd.grad(loss, leaves + list(cell.parameters()))
        results.append({**{f"out{i}": o.detach() for i, o in enumerate(outs)},
                        **{f"grad{i}": g for i, g in enumerate(grads)}})
    assert_same(results[0], results[1], dtype)


VARIANTS = {
    "irnn": (rk.IRNN, {}), "peephole": (rk.PeepholeLSTM, {}),
    "layernorm_lstm": (rk.LayerNormLSTM, {}), "layernorm_gru": (rk.LayerNormGRU, {}),
    "leaky": (rk.LeakyRNN, {"rate": (0.05, 1.0), "learn_rate": True}),
    "skip": (rk.SkipRNN, {"delays": (1, 3)}),
    "lstm_regularised": (rk.LSTM, {"zoneout": (0.2, 0.1), "recurrent_dropout": 0.3}),
    "gru_regularised": (rk.GRU, {"zoneout": 0.25, "recurrent_dropout": 0.2}),
    "rnn_regularised": (rk.RNN, {"zoneout": 0.3}),
}


@given(name=st.sampled_from(sorted(VARIANTS)), I=st.integers(1, 5), H=st.integers(1, 6),
       L=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
       T=st.integers(1, 6), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       training=st.booleans(), dropout=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**16))
def test_variants_fused_match_reference(name: str, I: int, H: int, L: int, bidirectional: bool,
                                        bias: bool, T: int, lengths: list[int], training: bool,
                                        dropout: float, seed: int) -> None:
    """float64, where two correct kernels agree to rounding (float32 LayerNorm backwards do
    not agree to 1e-5 with each other: tests/test_engine_variants.py holds them to float64).
    atol 1e-10: a LayerNorm over one unit has gradients that are rounding noise around 0."""
    cls, options = VARIANTS[name]
    lengths = [min(n, T) for n in lengths]
    lengths[0] = T
    case = Case(name, {"input_size": I, "hidden_size": H, "num_layers": L, "bias": bias,
                       "bidirectional": bidirectional, "batch_first": False},
                torch.float64, "lengths", T, lengths, True, "contiguous", "", training)
    ctor = {k: v for k, v in case.ctor.items() if k != "input_size" and k != "hidden_size"}
    if L > 1:
        ctor["dropout"] = dropout
    fused = cls(I, H, **ctor, **options, engine="fused", dtype=torch.float64)
    ref = cls(I, H, **ctor, **options, engine="reference", dtype=torch.float64)
    ref.load_state_dict(fused.state_dict())
    assert_same(_results(fused, case, seed, True), _results(ref, case, seed, True),
                torch.float64, atol=1e-10)
