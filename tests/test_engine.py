"""The fused engine against its oracle, the reference path: outputs, states and every gradient."""

from __future__ import annotations

import pytest
import torch
from parity import (
    KINDS,
    TOL,
    assert_same,
    assert_stack_matches_reference,
    forward_backward,
    gradcheck_layer,
    make_hx,
)
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit as rk
from rnnkit import engine
from rnnkit.engine import tuning
from rnnkit.layers import stack

T, B, I, H = 4, 2, 3, 5
DTYPES = [torch.float32, torch.float64]

# (num_layers, bidirectional, batch_first, bias, with_hx, input form): every option appears with
# and without each other one at least once, every form with 1 to 3 layers.
CONFIGS = [
    (1, False, False, True, False, "padded"),
    (1, True, True, False, True, "lengths"),
    (2, False, True, True, True, "packed"),
    (2, True, False, True, False, "lengths"),
    (3, True, False, False, True, "packed"),
    (3, False, False, True, True, "padded"),
    (2, True, True, True, False, "padded"),
    (1, False, False, False, False, "packed"),
    (3, False, True, True, False, "lengths"),
]


def _pair(kind: str, dtype: torch.dtype, **kwargs):
    """The same layer twice: engine="fused" and engine="reference", sharing weights."""
    cls, _, extra = KINDS[kind]
    fused = cls(I, H, **extra, **kwargs, engine="fused").to(dtype)
    ref = cls(I, H, **extra, **kwargs, engine="reference").to(dtype)
    ref.load_state_dict(fused.state_dict())
    return fused, ref


def _input(form: str, batch: int, batch_first: bool, dtype: torch.dtype):
    """(x, extra forward kwargs): padded, padded with lengths=, or a PackedSequence."""
    lengths = torch.tensor([3, 4, 1][:batch] if batch <= 3 else [T] * batch)
    shape = (batch, T, I) if batch_first else (T, batch, I)
    x = torch.randn(*shape, dtype=dtype)
    if form == "padded":
        return x.requires_grad_(), {}
    if form == "lengths":
        return x.requires_grad_(), {"lengths": lengths}
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    data = packed.data.detach().requires_grad_()
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices), {}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir,batch_first,bias,with_hx,form", CONFIGS)
def test_fused_matches_reference(kind, layers, bidir, batch_first, bias, with_hx, form, dtype):
    fused, ref = _pair(kind, dtype, num_layers=layers, bidirectional=bidir,
                       batch_first=batch_first, bias=bias)
    batch = 3 if form != "padded" else B
    x, kwargs = _input(form, batch, batch_first, dtype)
    hx = make_hx(ref, batch, dtype) if with_hx else None
    assert_same(forward_backward(fused, x, hx, **kwargs), forward_backward(ref, x, hx, **kwargs),
                dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_inter_layer_dropout_matches_reference_with_same_seed(kind):
    fused, ref = _pair(kind, torch.float64, num_layers=3, bidirectional=True, dropout=0.4)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(7)
    got = forward_backward(fused, x)
    torch.manual_seed(7)
    want = forward_backward(ref, x)
    assert_same(got, want, torch.float64)
    torch.manual_seed(8)
    other = forward_backward(fused, x)
    assert not torch.allclose(other["output"], got["output"])  # dropout really is applied


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(kind):
    """Numerical gradients of input, both states and every weight through the fused path."""
    fused, _ = _pair(kind, torch.float64, num_layers=2, bidirectional=True)
    x = torch.randn(T, 3, I, dtype=torch.float64, requires_grad=True)
    assert gradcheck_layer(fused, x, torch.tensor([4, 2, 3]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("small_batch", "onednn", "own_grad_macs"),
                         [(0, 0, 0), (16, 0, 0), (16, 0, 1 << 24), (0, 2, 0)],
                         ids=["blas", "blocked", "blocked-own-grads", "onednn"])
def test_every_gemm_path_matches_reference(kind, small_batch, onednn, own_grad_macs, dtype):
    """Batches above `small_batch` run the per-step GEMM through BLAS (packed for float32);
    `onednn=2` sends every float32 product to oneDNN (float64 stays on BLAS); `own_grad_macs`
    puts a small call's weight gradients on the packed step kernel instead of BLAS."""
    ext = engine.load_extension()
    if onednn and not ext.has_onednn():
        pytest.skip("this torch build has no oneDNN matrix products")
    with tuning.overridden(small_batch=small_batch, onednn=onednn, own_grad_macs=own_grad_macs):
        fused, ref = _pair(kind, dtype, num_layers=2, bidirectional=True)
        x = torch.randn(T, 5, I, dtype=dtype, requires_grad=True)
        kwargs = {"lengths": torch.tensor([4, 1, 3, 4, 2])}
        hx = make_hx(ref, 5, dtype)
        assert_same(forward_backward(fused, x, hx, **kwargs),
                    forward_backward(ref, x, hx, **kwargs), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("few_step_rows", "small_batch"), [(0, 16), (4, 16), (64, 16), (0, 0)],
                         ids=["blas", "some", "default", "large-batch"])
def test_few_step_products_match_reference(kind, few_step_rows, small_batch, dtype):
    """Calls of one or two steps multiply in the weights' own layout (step_mm_nt.h) up to
    `few_step_rows` rows, else through BLAS: batches of 1 to 7 rows (blocks of four rows, then
    one of two and one of one), one and two steps, both directions, forward and every gradient. With
    `small_batch=0` every batch counts as large: the backward's step product runs on plain
    BLAS, unpacked (packing costs more than it saves over one or two steps)."""
    with tuning.overridden(few_step_rows=few_step_rows, small_batch=small_batch):
        for T_few in (1, 2):
            for B in (1, 2, 3, 5, 7):
                cls, _, extra = KINDS[kind]  # sizes with whole vectors and a remainder
                fused = cls(19, 21, **extra, bidirectional=True, engine="fused").to(dtype)
                ref = cls(19, 21, **extra, bidirectional=True, engine="reference").to(dtype)
                ref.load_state_dict(fused.state_dict())
                x = torch.randn(T_few, B, 19, dtype=dtype, requires_grad=True)
                hx = make_hx(ref, B, dtype)
                assert_same(forward_backward(fused, x, hx), forward_backward(ref, x, hx), dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_few_step_onednn_products_match_reference(kind):
    """`few_step_onednn_macs=1` with `onednn=2`: a call of one or two steps runs its step product
    on oneDNN (a weight in the generic layout, as a beam search's large batch does), forward and
    every gradient, both directions, against the reference engine."""
    if not engine.load_extension().has_onednn():
        pytest.skip("this torch build has no oneDNN matrix products")
    with tuning.overridden(onednn=2, few_step_onednn_macs=1):
        for T_few in (1, 2):
            cls, _, extra = KINDS[kind]
            fused = cls(19, 21, **extra, bidirectional=True, engine="fused")
            ref = cls(19, 21, **extra, bidirectional=True, engine="reference")
            ref.load_state_dict(fused.state_dict())
            x = torch.randn(T_few, 7, 19, requires_grad=True)
            hx = make_hx(ref, 7, torch.float32)
            assert_same(forward_backward(fused, x, hx), forward_backward(ref, x, hx),
                        torch.float32)
            with torch.no_grad():
                got, want = fused(x, hx), ref(x, hx)
            assert_same({"out": got[0]}, {"out": want[0]}, torch.float32)


def test_onednn_default_policy_is_as_accurate_as_the_reference_at_large_batches():
    """At the default policy a float32 layer call of B=64, H=256 takes the oneDNN path. Its
    reductions (over T*B = 256 rows, and over H) sum in another order than the reference's, so
    both are held to the float64 truth: the fused error is at most a small multiple of the
    reference engine's own float32 error."""
    ext = engine.load_extension()
    if not ext.has_onednn():
        pytest.skip("this torch build has no oneDNN matrix products")
    torch.manual_seed(0)
    fused = rk.LSTM(256, 256, engine="fused")
    ref = rk.LSTM(256, 256, engine="reference")
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(4, 64, 256, requires_grad=True)
    got, ours32 = forward_backward(fused, x), forward_backward(ref, x)
    x64 = x.detach().double().requires_grad_()
    truth = forward_backward(ref.double(), x64)
    for key, t in truth.items():
        err_fused = (got[key].double() - t).abs().max().item()
        err_ref = (ours32[key].double() - t).abs().max().item()
        scale = t.abs().max().item()
        assert err_fused <= 4 * err_ref + 1e-7 * scale, (key, err_fused, err_ref, scale)


@pytest.mark.parametrize("onednn", [0, 2], ids=["blas", "onednn"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_inference_in_chunks_of_input_products_matches_reference(kind, dtype, onednn):
    """Under no_grad a large call computes its input products a chunk of steps at a time;
    `xp_chunk_rows=10` at B = 5 makes chunks of 2 steps (7 steps: the last chunk partial,
    and the reverse direction walks the chunks backwards), with lengths ending mid-chunk."""
    ext = engine.load_extension()
    if onednn and not ext.has_onednn():
        pytest.skip("this torch build has no oneDNN matrix products")
    with tuning.overridden(xp_chunk_rows=10, onednn=onednn):
        assert_stack_matches_reference(kind, dtype, 24, [7, 3, 6, 7, 1], training=False)


@pytest.mark.parametrize("kind", KINDS)
def test_cached_buffers_are_reused_and_results_stay_right(kind):
    """Work buffers of 64 KB and more go back to the engine's cache when freed, and the next
    call takes them again, stale contents and all: a second call with other inputs must still
    match the reference. `empty_cache` frees what waits; a zero limit keeps nothing."""
    ext = engine.load_extension()
    engine.empty_cache()
    cls, _, extra = KINDS[kind]
    fused = cls(16, 128, **extra, engine="fused")
    ref = cls(16, 128, **extra, engine="reference")
    ref.load_state_dict(fused.state_dict())
    for seed in (0, 1):  # (40, 64, 128) float32: the saved (T, B, H) buffers are 1.3 MB each
        torch.manual_seed(seed)
        x = torch.randn(40, 64, 16, requires_grad=True)
        kwargs = {"lengths": torch.randint(1, 41, (64,))}
        assert_same(forward_backward(fused, x, **kwargs), forward_backward(ref, x, **kwargs),
                    torch.float32)
        assert engine.cached_bytes() >= 1 << 20
    assert engine.empty_cache() >= 1 << 20
    assert engine.cached_bytes() == 0
    old = ext.set_cache_limit(0)
    try:
        forward_backward(fused, torch.randn(40, 64, 16, requires_grad=True))
        assert engine.cached_bytes() == 0
    finally:
        ext.set_cache_limit(old)


def test_emptying_the_cache_spares_buffers_in_use():
    """Saved buffers an autograd graph still holds are not the cache's to free."""
    torch.manual_seed(0)
    fused = rk.LSTM(64, 64, engine="fused")
    ref = rk.LSTM(64, 64, engine="reference")
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(40, 32, 64, requires_grad=True)
    out, _ = fused(x)
    engine.empty_cache()
    torch.randn(40, 32, 256).sum()  # reuses freed memory, if any was wrongly freed
    out.sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    ref(x_ref)[0].sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL[torch.float32])


@pytest.mark.parametrize("kind", KINDS)
def test_inference_path_equals_training_path(kind):
    """Under no_grad the engine keeps no workspace; the outputs must not change."""
    fused, _ = _pair(kind, torch.float32, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I)
    out_grad, state_grad = fused(x.requires_grad_(), lengths=torch.tensor([2, 4]))
    with torch.no_grad():
        out_ng, state_ng = fused(x, lengths=torch.tensor([2, 4]))
    torch.testing.assert_close(out_ng, out_grad.detach(), rtol=0, atol=0)
    for a, b in zip(state_ng if isinstance(state_ng, tuple) else (state_ng,),
                    state_grad if isinstance(state_grad, tuple) else (state_grad,), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_chunks_with_carried_state_equal_one_pass(kind):
    cls, _, extra = KINDS[kind]
    layer = cls(I, H, **extra, num_layers=2, engine="fused").double()
    x = torch.randn(6, B, I, dtype=torch.float64)
    whole, state_whole = layer(x)
    first, state = layer(x[:2])
    second, state = layer(x[2:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole, **TOL[torch.float64])


def test_parametrized_weight_reaches_the_kernels():
    """The layers read registered Parameters straight from the module's dict; a parametrized
    weight is no longer there and must come through getattr, computed."""
    from torch.nn.utils import parametrize

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    fused, ref = _pair("lstm", torch.float64)
    parametrize.register_parametrization(fused, "weight_hh_l0", Double())
    with torch.no_grad():
        ref.weight_hh_l0.mul_(2)
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.testing.assert_close(fused(x)[0], ref(x)[0], **TOL[torch.float64])


def test_projection_is_declined_with_a_reason():
    layer = rk.LSTM(I, H, proj_size=2, engine="fused")
    reason = stack.fused_reason(layer, torch.randn(T, B, I))
    assert reason is not None and "proj_size=2" in reason
    with pytest.raises(RuntimeError, match="proj_size"):
        layer(torch.randn(T, B, I))


def test_other_dtypes_are_declined_and_auto_falls_back():
    layer = rk.GRU(I, H).to(torch.bfloat16)
    x = torch.randn(T, B, I, dtype=torch.bfloat16)
    assert "bfloat16" in stack.fused_reason(layer, x)
    out, _ = layer(x)  # engine="auto" runs the reference path
    assert out.shape == (T, B, H)
