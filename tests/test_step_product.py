"""The per-step products on their own against torch's matmul. On weights packed in panels
(csrc/step_mm_packed.h): generated sizes (partial last panels, one to many rows, the row
blocks' tails), both source layouts, accumulation into c or a bias row, and a column range
split at a panel boundary as the thread split does. The weight-layout product of one-step calls
(csrc/step_mm_nt.h) at the end. Their use inside the layers is covered by the parity tests."""

from __future__ import annotations

import pytest
import torch

from rnnkit import engine

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ext = engine.load_extension()


def _expected(a, m_kn, c, bias):
    out = a @ m_kn
    if c is not None:
        out = out + c
    elif bias is not None:
        out = out + bias
    return out


@settings(max_examples=120, deadline=None)
@given(rows=st.integers(1, 70), k=st.integers(1, 300), n=st.integers(1, 300),
       f64=st.booleans(), m_nk=st.booleans(), start=st.sampled_from(["none", "c", "bias"]),
       split=st.integers(0, 4), seed=st.integers(0, 2**16))
@example(rows=1, k=128, n=64, f64=False, m_nk=True, start="none", split=0, seed=0)
@example(rows=5, k=21, n=63, f64=False, m_nk=True, start="c", split=0, seed=1)  # 63 < one panel
@example(rows=20, k=200, n=800, f64=False, m_nk=True, start="c", split=1, seed=2)
def test_packed_product_matches_matmul(rows, k, n, f64, m_nk, start, split, seed):
    dtype = torch.float64 if f64 else torch.float32
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, k, generator=g, dtype=dtype)
    m_kn = torch.randn(k, n, generator=g, dtype=dtype)
    c = torch.randn(rows, n, generator=g, dtype=dtype) if start == "c" else None
    bias = torch.randn(n, generator=g, dtype=dtype) if start == "bias" else None
    width = ext.pack_width(f64)
    n0 = min(n // width, split) * width  # a panel boundary inside [0, n]
    m = m_kn.t().contiguous() if m_nk else m_kn
    empty = torch.empty(0, dtype=dtype)
    got = ext.packed_product(a, m, c if c is not None else empty,
                             bias if bias is not None else empty, m_nk, n0)
    want = _expected(a, m_kn, c, bias)
    tol = {"rtol": 1e-12, "atol": 1e-12 * k} if f64 else {"rtol": 1e-5, "atol": 1e-5 * k}
    torch.testing.assert_close(got, want, **tol)


def test_packed_product_rejects_bad_arguments():
    a = torch.randn(4, 8)
    empty = torch.empty(0)
    with pytest.raises(ValueError, match="expected \\(N, K\\)"):
        ext.packed_product(a, torch.randn(16, 7), empty, empty, True, 0)
    with pytest.raises(ValueError, match="not a multiple of the panel width"):
        ext.packed_product(a, torch.randn(200, 8), empty, empty, True, 3)
    with pytest.raises(ValueError, match="c must be empty or a contiguous"):
        ext.packed_product(a, torch.randn(16, 8), torch.randn(4, 15), empty, True, 0)
    with pytest.raises(ValueError, match="float32 or float64"):
        ext.packed_product(a, torch.randn(16, 8, dtype=torch.float64), empty, empty, True, 0)


@settings(max_examples=120, deadline=None)
@given(rows=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(1, 300),
       f64=st.booleans(), accumulate=st.booleans(), pad_a=st.integers(0, 5),
       pad_w=st.integers(0, 5), seed=st.integers(0, 2**16))
@example(rows=8, k=128, n=512, f64=False, accumulate=True, pad_a=0, pad_w=0, seed=0)
@example(rows=7, k=200, n=37, f64=False, accumulate=False, pad_a=3, pad_w=1, seed=1)  # K tail
@example(rows=3, k=5, n=3, f64=True, accumulate=True, pad_a=0, pad_w=0, seed=2)  # K < a vector
def test_nt_product_matches_matmul(rows, k, n, f64, accumulate, pad_a, pad_w, seed):
    """The weight-layout product (csrc/step_mm_nt.h; calls of one or two steps): row blocks of
    4, 2 and 1, column blocks and the last columns one at a time, the K tail read as a masked
    vector, and rows of a and w further apart than K (views into wider matrices)."""
    dtype = torch.float64 if f64 else torch.float32
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, k + pad_a, generator=g, dtype=dtype)[:, pad_a:]
    w = torch.randn(n, k + pad_w, generator=g, dtype=dtype)[:, :k]
    c = torch.randn(rows, n, generator=g, dtype=dtype) if accumulate else None
    got = ext.nt_product(a, w, c if c is not None else torch.empty(0, dtype=dtype))
    want = a @ w.t() + (c if c is not None else 0)
    tol = {"rtol": 1e-12, "atol": 1e-12 * k} if f64 else {"rtol": 1e-5, "atol": 1e-5 * k}
    torch.testing.assert_close(got, want, **tol)


def test_nt_product_rejects_bad_arguments():
    with pytest.raises(ValueError, match="must be matrices with unit last stride"):
        ext.nt_product(torch.randn(4, 8), torch.randn(16, 7), torch.empty(0))
    with pytest.raises(ValueError, match="must be matrices with unit last stride"):
        ext.nt_product(torch.randn(8, 4).t(), torch.randn(16, 8), torch.empty(0))
    with pytest.raises(ValueError, match="contiguous \\(B, N\\) matrix"):
        ext.nt_product(torch.randn(4, 8), torch.randn(16, 8), torch.randn(4, 15))
