"""The fused variant kernels against their oracle, the reference path: outputs, final states and
every gradient, float64 gradcheck, regulariser masks, dispatch and threads."""

from __future__ import annotations

import types

import pytest
import torch
from parity import assert_same, forward_backward

import rnnkit as rk
from rnnkit import engine
from rnnkit.engine import tuning
from rnnkit.layers import stack

T, B, I, H = 4, 2, 3, 5
DTYPES = [torch.float32, torch.float64]

# name -> (layer class, constructor arguments)
KINDS = {
    "peephole": (rk.PeepholeLSTM, {}),
    "ln_lstm": (rk.LayerNormLSTM, {}),
    "ln_gru": (rk.LayerNormGRU, {}),
    "leaky": (rk.LeakyRNN, {"rate": (0.1, 0.9), "learn_rate": True}),
    "leaky_relu": (rk.LeakyRNN, {"rate": 0.3, "learn_rate": True, "nonlinearity": "relu"}),
    "lstm_regularised": (rk.LSTM, {"recurrent_dropout": 0.3, "zoneout": (0.2, 0.4)}),
    "gru_regularised": (rk.GRU, {"recurrent_dropout": 0.3, "zoneout": 0.3}),
    "irnn_regularised": (rk.IRNN, {"recurrent_dropout": 0.2, "zoneout": 0.3}),
    "rnn_zoneout": (rk.RNN, {"zoneout": 0.25}),
    "peephole_regularised": (rk.PeepholeLSTM, {"recurrent_dropout": 0.3, "zoneout": 0.3}),
    "ln_lstm_regularised": (rk.LayerNormLSTM, {"recurrent_dropout": 0.2, "zoneout": 0.2}),
    "ln_gru_regularised": (rk.LayerNormGRU, {"recurrent_dropout": 0.3, "zoneout": 0.3}),
    "leaky_regularised": (rk.LeakyRNN, {"learn_rate": True, "recurrent_dropout": 0.3,
                                        "zoneout": 0.3}),
    "skip": (rk.SkipRNN, {"delays": (1, 3)}),
    "skip_dilated_relu": (rk.SkipRNN, {"delays": (2,), "nonlinearity": "relu"}),
    "skip_regularised": (rk.SkipRNN, {"delays": (1, 2), "recurrent_dropout": 0.3,
                                      "zoneout": (0.2, 0.4)}),
}
STANDARD_MODES = {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"}
LAYER_NORM = {"ln_lstm", "ln_gru", "ln_lstm_regularised", "ln_gru_regularised"}

# (num_layers, bidirectional, bias, with_hx, lengths, training)
CONFIGS = [
    (1, False, True, False, False, True),
    (2, True, True, True, True, True),
    (2, False, False, True, True, False),
    (1, True, False, False, True, True),
]


def _on_direction_kernels(layer, x, state, lengths):
    """A layer's `_run` that sends a standard cell to the direction kernels as well."""
    return stack.run_fused(layer, x, state, lengths, per_direction=True)


def _pair(kind: str, dtype: torch.dtype, **kwargs):
    """The same layer with engine="fused" and engine="reference", weights shared and moved off
    their initial values (LayerNorm gains 1 and shifts 0 would hide transposed terms)."""
    cls, extra = KINDS[kind]
    fused = cls(I, H, **extra, **kwargs, engine="fused").to(dtype)
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ref = cls(I, H, **extra, **kwargs, engine="reference").to(dtype)
    ref.load_state_dict(fused.state_dict())
    if fused.mode in STANDARD_MODES:  # not routed by the layer yet: call the fused stack
        fused._run = types.MethodType(_on_direction_kernels, fused)
    return fused, ref


def _hx(layer, dtype: torch.dtype):
    """A random initial state for `layer`: one (L*D, B, n) tensor per state field."""
    sizes = layer.cell_cls.state_sizes(layer.hidden_size, **layer.cell_options)
    LD = layer.num_layers * layer.num_directions
    hx = tuple(torch.randn(LD, B, n, dtype=dtype, requires_grad=True) for n in sizes)
    return hx if len(hx) == 2 else hx[0]


def _results(layer, x, hx, lengths):
    """Outputs, final states and all gradients under a loss whose weights are drawn in float32
    whatever the dtype, so a float32 and a float64 run differentiate the same function."""
    layer.zero_grad(set_to_none=True)
    out, state = layer(x, hx, lengths=lengths)
    g = torch.Generator().manual_seed(1)
    fields = [out, *(state if isinstance(state, tuple) else (state,))]
    loss = sum((t * torch.randn(t.shape, generator=g).to(t.dtype)).sum() for t in fields)
    inputs = [x, *(hx if isinstance(hx, tuple) else (() if hx is None else (hx,)))]
    grads = torch.autograd.grad(loss, inputs + list(layer.parameters()))
    return [f.detach() for f in fields] + list(grads)


def _as_accurate_as_reference(fused, ref, x, hx, lengths):
    """LayerNorm's backward cancels digits (dy - mean(dy) - xhat mean(dy xhat)), so in float32
    the reference itself is ~1e-4 off the float64 result on small elements and two float32
    runs cannot agree to 1e-5. Instead: the fused float32 results are no further from the
    float64 reference than the float32 reference is (float64 agreement is checked to 1e-10)."""
    truth_layer = ref.double()
    truth_layer.load_state_dict({k: v.double() for k, v in fused.state_dict().items()})
    double = lambda t: None if t is None else t.detach().double().requires_grad_()  # noqa: E731
    hx64 = tuple(double(h) for h in hx) if isinstance(hx, tuple) else double(hx)
    torch.manual_seed(7)
    truth = _results(truth_layer, double(x), hx64, lengths)
    ref.float()
    ref.load_state_dict(fused.state_dict())
    torch.manual_seed(7)
    got = _results(fused, x, hx, lengths)
    torch.manual_seed(7)
    oracle = _results(ref, x, hx, lengths)
    for i, (a, b, t) in enumerate(zip(got, oracle, truth, strict=True)):
        err_fused = (a.double() - t).abs().max().item()
        err_ref = (b.double() - t).abs().max().item()
        scale = t.abs().max().item()
        assert err_fused <= 4 * err_ref + 1e-6 * scale, (i, err_fused, err_ref, scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir,bias,with_hx,with_lengths,training", CONFIGS)
def test_fused_matches_reference(kind, layers, bidir, bias, with_hx, with_lengths, training,
                                 dtype):
    fused, ref = _pair(kind, dtype, num_layers=layers, bidirectional=bidir, bias=bias,
                       dropout=0.3 if layers > 1 else 0.0)
    fused.train(training)
    ref.train(training)
    assert stack.uses_direction_kernels(fused)
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    hx = _hx(fused, dtype) if with_hx else None
    kwargs = {"lengths": torch.tensor([3, 4])} if with_lengths else {}
    if kind in LAYER_NORM and dtype == torch.float32:
        _as_accurate_as_reference(fused, ref, x, hx, kwargs.get("lengths"))
        return
    torch.manual_seed(7)  # the same masks (and inter-layer dropout) for both engines
    a = forward_backward(fused, x, hx, **kwargs)
    torch.manual_seed(7)
    b = forward_backward(ref, x, hx, **kwargs)
    assert_same(a, b, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_onednn_products_match_reference(kind):
    """`onednn=2`: every float32 product over all T*B rows (the input projection, both weight
    gradients, dx) runs on oneDNN (onednn.h's big_gemm) instead of BLAS; two layers, both
    directions, lengths, dropout and zoneout masks drawn."""
    if not engine.load_extension().has_onednn():
        pytest.skip("this torch build has no oneDNN matrix products")
    with tuning.overridden(onednn=2):
        fused, ref = _pair(kind, torch.float32, num_layers=2, bidirectional=True, dropout=0.3)
        x = torch.randn(T, B, I, requires_grad=True)
        hx = _hx(fused, torch.float32)
        lengths = torch.tensor([3, 4])
        if kind in LAYER_NORM:
            _as_accurate_as_reference(fused, ref, x, hx, lengths)
            return
        torch.manual_seed(7)
        a = forward_backward(fused, x, hx, lengths=lengths)
        torch.manual_seed(7)
        b = forward_backward(ref, x, hx, lengths=lengths)
    assert_same(a, b, torch.float32)


@pytest.mark.parametrize("kind,bidir,fast", [
    *((k, True, True) for k in KINDS),  # every kind, both directions: random projections
    *((k, False, False) for k in ("peephole", "ln_lstm", "ln_gru", "leaky", "skip")),  # all
])
def test_gradcheck_float64(kind, bidir, fast):
    fused, _ = _pair(kind, torch.float64, bidirectional=bidir)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    hx = _hx(fused, torch.float64)
    hx = hx if isinstance(hx, tuple) else (hx,)
    params = [p for p in fused.parameters() if p.requires_grad]
    lengths = torch.tensor([2, 4])

    def run(x, *inputs):
        state, weights = inputs[:len(hx)], inputs[len(hx):]
        torch.manual_seed(3)  # the same regulariser masks at every evaluation
        with torch.nn.utils.stateless._reparametrize_module(
                fused, dict(zip([n for n, p in fused.named_parameters() if p.requires_grad],
                                weights, strict=True))):
            out, final = fused(x, state if len(state) == 2 else state[0], lengths=lengths)
        final = final if isinstance(final, tuple) else (final,)
        return (out, *final)

    assert torch.autograd.gradcheck(run, (x, *hx, *params), eps=1e-6, atol=1e-6, rtol=1e-5,
                                    fast_mode=fast)


def test_same_seed_same_masks_and_eval_is_deterministic():
    layer = rk.PeepholeLSTM(I, H, recurrent_dropout=0.4, zoneout=0.3, engine="fused")
    x = torch.randn(T, B, I)
    torch.manual_seed(11)
    a = layer(x)[0]
    torch.manual_seed(11)
    b = layer(x)[0]
    c = layer(x)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)  # a fresh draw
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)


def test_recurrent_dropout_is_off_in_eval():
    layer = rk.GRU(I, H, recurrent_dropout=0.5, engine="fused").eval()
    plain = rk.GRU(I, H, engine="fused").eval()
    plain.load_state_dict(layer.state_dict())
    assert not stack.uses_direction_kernels(layer)  # the layer kernels run it
    x = torch.randn(T, B, I)
    torch.testing.assert_close(layer(x)[0], plain(x)[0], rtol=0, atol=0)


def test_fused_runs_the_variant_kernels(monkeypatch):
    calls = []
    real = engine.fused_direction
    monkeypatch.setattr(engine, "fused_direction", lambda *a: calls.append(1) or real(*a))
    layer = rk.LayerNormGRU(I, H, engine="fused")
    layer(torch.randn(T, B, I))
    assert calls


def test_unsupported_raises_with_fused_and_falls_back_with_auto():
    x = torch.randn(T, B, I, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="float32 and float64, got input of dtype"):
        rk.PeepholeLSTM(I, H, engine="fused").to(torch.bfloat16)(x)
    auto = rk.PeepholeLSTM(I, H).to(torch.bfloat16)
    ref = rk.PeepholeLSTM(I, H, engine="reference").to(torch.bfloat16)
    ref.load_state_dict(auto.state_dict())
    torch.testing.assert_close(auto(x)[0], ref(x)[0], rtol=0, atol=0)
    proj = rk.LSTM(I, H, proj_size=2, zoneout=0.1)
    assert "proj_size=2" in stack.fused_reason(proj, x.float())


def test_no_grad_matches_grad_path():
    layer = rk.PeepholeLSTM(I, H, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I)
    with torch.no_grad():
        a = layer(x)
    b = layer(x)
    torch.testing.assert_close(a[0], b[0].detach(), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["ln_lstm", "lstm_regularised"])
def test_thread_count_does_not_change_results(kind):
    fused, _ = _pair(kind, torch.float32, num_layers=2, bidirectional=True)
    _same_with_one_and_two_threads(fused, torch.randn(T, B, I, requires_grad=True))


def _same_with_one_and_two_threads(layer, x):
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(5)
            results.append(forward_backward(layer, x))
    finally:
        torch.set_num_threads(before)
    assert_same(results[0], results[1], torch.float32)


@pytest.mark.parametrize("kind", ["peephole", "ln_gru", "skip", "leaky"])
def test_chunks_with_carried_state_equal_one_pass(kind):
    fused, _ = _pair(kind, torch.float64, num_layers=2, bidirectional=False)
    x = torch.randn(T, B, I, dtype=torch.float64)
    whole, final = fused(x)
    first, carried = fused(x[:1])
    rest, final_chunked = fused(x[1:], carried)
    torch.testing.assert_close(torch.cat([first, rest]), whole, rtol=1e-12, atol=1e-12)
    for a, b in zip(final_chunked if isinstance(final, tuple) else (final_chunked,),
                    final if isinstance(final, tuple) else (final,), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["peephole", "ln_lstm", "ln_gru", "leaky", "skip",
                                  "lstm_regularised"])
def test_step_products_split_over_threads_match_one_thread(kind):
    """At B=16, H=128 the blocked step products (>= 512K multiply-adds) split their columns, and
    the row passes their rows (the backward's parameter gradients summed per thread), over two
    threads; one thread runs them whole. Same results within float32 rounding."""
    cls, extra = KINDS[kind]
    torch.manual_seed(0)
    layer = cls(8, 128, **extra, engine="fused")
    if layer.mode in STANDARD_MODES:
        layer._run = types.MethodType(_on_direction_kernels, layer)
    _same_with_one_and_two_threads(layer, torch.randn(3, 16, 8, requires_grad=True))


@pytest.fixture
def variant_team_everywhere():
    """`direction_team_batch=16, direction_team_macs=0`: every step loop of a batch from 2 to 16
    runs on a thread team (rows of the batch for the row pass, columns for the product)."""
    before = torch.get_num_threads()
    with tuning.overridden(direction_team_batch=16, direction_team_macs=0) as values:
        yield values
    torch.set_num_threads(before)


TEAM_KINDS = ["ln_lstm", "ln_gru", "peephole_regularised", "ln_lstm_regularised",
              "gru_regularised", "leaky_regularised", "rnn_zoneout"]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", TEAM_KINDS)
def test_thread_team_matches_reference(kind, dtype, threads, variant_team_everywhere):
    """H = 40 gives the product whole-vector column slices ending in a partial one (the RNN's
    40 columns: 16 + 24, or 16 + 16 + 8 with 3 threads) and B = 5 uneven row slices; lengths,
    two layers, both directions, training masks (the same seed for both engines)."""
    _matches_reference(kind, dtype, threads)


def _matches_reference(kind: str, dtype: torch.dtype, threads: int) -> None:
    torch.set_num_threads(threads)
    cls, extra = KINDS[kind]
    fused = cls(I, 40, **extra, num_layers=2, bidirectional=True, engine="fused").to(dtype)
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ref = cls(I, 40, **extra, num_layers=2, bidirectional=True, engine="reference").to(dtype)
    ref.load_state_dict(fused.state_dict())
    if fused.mode in STANDARD_MODES:
        fused._run = types.MethodType(_on_direction_kernels, fused)
    assert stack.uses_direction_kernels(fused)
    x = torch.randn(6, 5, I, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 6, 1])
    if kind in LAYER_NORM and dtype == torch.float32:
        _as_accurate_as_reference(fused, ref, x, None, lengths)
        return
    torch.manual_seed(7)
    a = forward_backward(fused, x, lengths=lengths)
    torch.manual_seed(7)
    b = forward_backward(ref, x, lengths=lengths)
    assert_same(a, b, dtype)


@pytest.mark.parametrize("kind", ["ln_lstm", "peephole_regularised", "leaky_regularised"])
def test_thread_team_gradcheck_float64(kind, variant_team_everywhere):
    """Random-projection gradcheck of every input through the variant kernels' team."""
    _gradcheck(kind)


def _gradcheck(kind: str) -> None:
    torch.set_num_threads(2)
    cls, extra = KINDS[kind]
    layer = cls(I, 40, **extra, engine="fused").double()
    x = torch.randn(4, 3, I, dtype=torch.float64, requires_grad=True)
    params = [p for p in layer.parameters() if p.requires_grad]
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    lengths = torch.tensor([4, 2, 3])

    def run(x, *weights):
        torch.manual_seed(3)  # the same regulariser masks at every evaluation
        with torch.nn.utils.stateless._reparametrize_module(
                layer, dict(zip(names, weights, strict=True))):
            out, _ = layer(x, lengths=lengths)
        return out

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5,
                                    fast_mode=True)


@pytest.fixture
def variant_split_everywhere():
    """`direction_team_batch=0, split_rows=1, team_macs=0`: no team, and every step loop of a
    batch of two rows or more splits its rows over the threads for all its steps."""
    before = torch.get_num_threads()
    with tuning.overridden(direction_team_batch=0, split_rows=1, team_macs=0) as values:
        yield values
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", TEAM_KINDS)
def test_row_split_matches_reference(kind, dtype, threads, variant_split_everywhere):
    """B = 5 rows split 2 + 3 (or 1 + 2 + 2) for the whole step loop; lengths, two layers, both
    directions, training masks, forward and every gradient against the reference."""
    _matches_reference(kind, dtype, threads)


@pytest.mark.parametrize("kind", ["ln_lstm", "peephole_regularised", "leaky_regularised",
                                  "gru_regularised"])
def test_row_split_gradcheck_float64(kind, variant_split_everywhere):
    """Random-projection gradcheck of every input through the variant kernels' row split."""
    _gradcheck(kind)

