"""Generated inputs for the engine's argument checks (hypothesis): random sizes, one tensor's
size off by a random amount, random lengths; the fused engine either runs or raises a ValueError
naming the argument, and runs exactly when everything matches."""

from __future__ import annotations

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rnnkit.engine import fused_layer, load_extension  # noqa: E402

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@pytest.fixture(autouse=True, scope="module")
def _ext():
    if load_extension(quiet=True) is None:
        pytest.skip("the fused engine could not be built")


sizes = st.fixed_dictionaries({
    "mode": st.sampled_from(sorted(GATES)), "T": st.integers(1, 5), "B": st.integers(1, 4),
    "I": st.integers(1, 4), "H": st.integers(1, 4), "D": st.integers(1, 2),
    "bias": st.booleans()})

# The tensors one case may get wrong: (name in the message, which tensor, which dimension).
TARGETS = [("x", "x", 2), ("weight_ih", "w_ih", 0), ("weight_ih", "w_ih", 1),
           ("weight_hh", "w_hh", 0), ("weight_hh", "w_hh", 1), ("bias_ih", "b_ih", 0),
           ("h0", "h0", 0), ("h0", "h0", 1), ("h0", "h0", 2), ("c0", "c0", 1)]


def _call(s: dict, shapes: dict, lengths: torch.Tensor | None):
    def t(name):
        return torch.randn(shapes[name]) if name in shapes else None
    weights = [(t("w_ih"), t("w_hh"), t("b_ih"), t("b_hh")) for _ in range(s["D"])]
    c0 = t("c0") if s["mode"] == "LSTM" else None
    with torch.no_grad():
        return fused_layer(s["mode"], t("x"), t("h0"), c0, weights, lengths)


def _shapes(s: dict) -> dict:
    G = GATES[s["mode"]] * s["H"]
    shapes = {"x": [s["T"], s["B"], s["I"]], "w_ih": [G, s["I"]], "w_hh": [G, s["H"]],
              "h0": [s["D"], s["B"], s["H"]], "c0": [s["D"], s["B"], s["H"]]}
    if s["bias"]:
        shapes.update(b_ih=[G], b_hh=[G])
    return shapes


@SETTINGS
@given(s=sizes, target=st.sampled_from(TARGETS), delta=st.integers(-3, 3))
def test_a_wrong_size_raises_and_a_right_one_runs(s, target, delta):
    shapes = _shapes(s)
    name, tensor, dim = target
    if tensor not in shapes or (tensor == "c0" and s["mode"] != "LSTM"):
        delta = 0  # a tensor this call has no use for
    if tensor in shapes:
        shapes[tensor][dim] = max(0, shapes[tensor][dim] + delta)
    if delta == 0 or shapes[tensor][dim] == _shapes(s)[tensor][dim]:
        out, h_n, _ = _call(s, shapes, None)
        assert out.shape == (s["T"], s["B"], s["D"] * s["H"])
        assert torch.isfinite(out).all()
        return
    # The hidden size is read from h0 and the input size from x: a wrong one shows as weights
    # that do not match it.
    names = {("h0", "h0", 2): ("h0", "weight_ih"), ("x", "x", 2): ("x", "weight_ih")}.get(
        target, (name,))
    with pytest.raises(ValueError, match=r"^fused_layer: (" + "|".join(names) + r")\b"):
        _call(s, shapes, None)


@SETTINGS
@given(s=sizes, data=st.data())
def test_lengths_outside_one_to_t_raise(s, data):
    T = s["T"]
    values = data.draw(st.lists(st.integers(-2, T + 2), min_size=s["B"], max_size=s["B"]))
    lengths = torch.tensor(values, dtype=torch.int64)
    if all(1 <= v <= T for v in values):
        out, _, _ = _call(s, _shapes(s), lengths)
        for b, n in enumerate(values):  # zero past each length
            assert not out[n:, b].any()
        return
    first = next(b for b, v in enumerate(values) if not 1 <= v <= T)
    with pytest.raises(ValueError, match=rf"^fused_layer: lengths\[{first}\] is {values[first]}"):
        _call(s, _shapes(s), lengths)
