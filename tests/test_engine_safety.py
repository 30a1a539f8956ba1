"""Memory safety of the engine's entry points: every pybind entry point of both extensions, and
`rk.engine.fused_layer`, given wrong shapes, dtypes, devices, lengths and saved tensors, raises
a ValueError naming the argument (csrc/checks.h) instead of reading or writing past a buffer;
non-contiguous tensors are made contiguous and give the same results."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit.engine import fused_layer

T, B, I, H = 4, 3, 2, 5  # distinct, so that no wrong size passes by accident
LENGTHS = [4, 2, 1]


def _randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


def _noncontiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values with other strides (every second element of a wider tensor)."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    view = wide[..., ::2]
    assert not view.is_contiguous() and torch.equal(view, t)
    return view


def _set(key, value):
    """A mutation replacing args[key] (a name, or a (name, index) into a list)."""
    def mutate(args):
        if isinstance(key, tuple):
            args[key[0]] = list(args[key[0]])
            args[key[0]][key[1]] = value(args[key[0]][key[1]]) if callable(value) else value
        else:
            args[key] = value(args[key]) if callable(value) else value
    return mutate


# ---- layer_forward / layer_backward of the fused engine ---------------------------------------

def _layer_args() -> dict:
    """A valid bidirectional LSTM call: x (T, B, I), h0 and c0 (2, B, H), 8 weights."""
    weights = []
    for _ in range(2):
        weights += [_randn(4 * H, I), _randn(4 * H, H), _randn(4 * H), _randn(4 * H)]
    return {"mode": 2, "x": _randn(T, B, I), "h0": _randn(2, B, H), "c0": _randn(2, B, H),
            "w": weights, "lengths": torch.tensor(LENGTHS)}


def _layer_forward(ext, a: dict, keep: bool = True):
    return ext.layer_forward(a["mode"], a["x"], a["h0"], a["c0"], a["w"], a["lengths"], keep)


LAYER_FORWARD_BAD = {
    "mode": (_set("mode", 9), r"mode is 9"),
    "x_2d": (_set("x", lambda x: x[0]), r"x has shape \(3, 2\), expected 3 dimensions"),
    "x_no_steps": (_set("x", lambda x: x[:0]), r"x has shape \(0, 3, 2\)"),
    "x_no_rows": (_set("x", lambda x: x[:, :0]), r"x has shape \(4, 0, 2\)"),
    "x_int": (_set("x", lambda x: x.long()), r"x has dtype Long"),
    "x_half": (_set("x", lambda x: x.half()), r"x has dtype Half"),
    "x_meta": (_set("x", lambda x: x.to("meta")), r"x is on device meta"),
    "x_input_size": (_set("x", lambda x: _randn(T, B, I + 1)),
                     r"weight_ih has shape \(20, 2\), expected \(20, 3\) .*input_size 3"),
    "h0_hidden": (_set("h0", lambda h: h[..., :4]),
                  r"expected \(16, 2\) .*hidden_size 4 \(from h0"),
    "h0_batch": (_set("h0", lambda h: h[:, :2]), r"h0 has shape \(2, 2, 5\), expected \(2, 3, 5\)"),
    "h0_directions": (_set("h0", lambda h: h[:1]), r"h0 has shape \(1, 3, 5\)"),
    "h0_2d": (_set("h0", lambda h: h[0]), r"h0 has shape \(3, 5\), expected \(D, B, H\)"),
    "h0_dtype": (_set("h0", lambda h: h.double()), r"h0 has dtype Double, expected Float"),
    "c0_shape": (_set("c0", lambda c: c[:, :, :4]), r"c0 has shape \(2, 3, 4\)"),
    "c0_missing": (_set("c0", torch.empty(0)), r"c0 has shape \(0,\)"),
    "c0_meta": (_set("c0", lambda c: c.to("meta")), r"c0 is on device meta"),
    "weight_ih": (_set(("w", 0), lambda w: w[:, :1]), r"weight_ih has shape \(20, 1\)"),
    "weight_hh": (_set(("w", 1), _randn(4 * H, 1)),
                  r"weight_hh has shape \(20, 1\), expected \(20, 5\) for mode LSTM"),
    "weight_hh_transposed": (_set(("w", 1), lambda w: w.t()), r"weight_hh has shape \(5, 20\)"),
    "weight_hh_dtype": (_set(("w", 1), lambda w: w.double()), r"weight_hh has dtype Double"),
    "weight_hh_reverse": (_set(("w", 5), lambda w: w[:-1]),
                          r"weight_hh of the reverse direction has shape \(19, 5\)"),
    "bias_ih": (_set(("w", 2), lambda b: b[:-1]), r"bias_ih has shape \(19,\), expected \(20,\)"),
    "bias_2d": (_set(("w", 3), lambda b: b[None]), r"bias_hh has shape \(1, 20\)"),
    "bias_half_missing": (_set(("w", 3), torch.empty(0)), r"bias_ih is given but bias_hh is empty"),
    "weight_count": (_set("w", lambda w: w[:7]), r"got 7 weight tensors"),
    "lengths_over": (_set("lengths", torch.tensor([5, 2, 1])), r"lengths\[0\] is 5, .*T = 4"),
    "lengths_zero": (_set("lengths", torch.tensor([4, 0, 1])), r"lengths\[1\] is 0"),
    "lengths_negative": (_set("lengths", torch.tensor([4, 2, -7])), r"lengths\[2\] is -7"),
    "lengths_count": (_set("lengths", torch.tensor([4, 2])), r"lengths has shape \(2,\)"),
    "lengths_2d": (_set("lengths", torch.tensor([LENGTHS])), r"lengths has shape \(1, 3\)"),
    "lengths_int32": (_set("lengths", torch.tensor(LENGTHS, dtype=torch.int32)), r"lengths is Int"),
    "lengths_float": (_set("lengths", torch.tensor([4.0, 2, 1])), r"lengths is Float"),
}


@pytest.mark.parametrize("case", list(LAYER_FORWARD_BAD))
def test_layer_forward_rejects(ext, case):
    mutate, message = LAYER_FORWARD_BAD[case]
    args = _layer_args()
    _layer_forward(ext, args)  # valid as built
    mutate(args)
    with pytest.raises(ValueError, match=r"^layer_forward: .*" + message):
        _layer_forward(ext, args)


def test_layer_forward_makes_strided_tensors_contiguous(ext):
    args = _layer_args()
    want = _layer_forward(ext, args, keep=False)[:3]
    strided = {**args, "x": _noncontiguous(args["x"]), "h0": _noncontiguous(args["h0"]),
               "c0": _noncontiguous(args["c0"]), "w": [_noncontiguous(w) for w in args["w"]],
               "lengths": _noncontiguous(args["lengths"])}
    for got, expected in zip(_layer_forward(ext, strided, keep=False)[:3], want, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def _backward_args(ext, mode: int = 2) -> dict:
    a = _layer_args()
    if mode != 2:  # GRU: 3 gates
        a["mode"], a["c0"] = mode, torch.empty(0)
        a["w"] = [w[: 3 * H] for w in a["w"]]
    res = _layer_forward(ext, a, keep=True)
    dc = _randn(2, B, H) if mode == 2 else torch.empty(0)
    return {**a, "saved": list(res[3:]), "dout": _randn(T, B, 2 * H), "dh": _randn(2, B, H),
            "dc": dc}


def _layer_backward(ext, a: dict):
    return ext.layer_backward(a["mode"], a["x"], a["w"], a["lengths"], a["saved"], a["dout"],
                              a["dh"], a["dc"], True)


LAYER_BACKWARD_BAD = {
    "saved_count": (_set("saved", lambda s: s[:-1]), r"got 7 saved tensors, expected 8"),
    "saved_shape": (_set(("saved", 0), lambda s: s[:, :, 1:].contiguous()),
                    r"activations has shape \(4, 3, 19\), expected \(4, 3, 20\)"),
    "saved_reverse": (_set(("saved", 5), lambda s: s[:2].contiguous()),
                      r"h_prev of the reverse direction has shape \(2, 3, 5\)"),
    "saved_strided": (_set(("saved", 1), _noncontiguous), r"h_prev .*is not contiguous"),
    "saved_dtype": (_set(("saved", 2), lambda s: s.double()), r"c_prev has dtype Double"),
    "dout_shape": (_set("dout", lambda d: d[..., :-1]), r"dout has shape \(4, 3, 9\)"),
    "dout_dtype": (_set("dout", lambda d: d.double()), r"dout has dtype Double"),
    "dh_shape": (_set("dh", lambda d: d[:, :2]), r"dh_n has shape \(2, 2, 5\)"),
    "dc_missing": (_set("dc", torch.empty(0)), r"dc_n has shape \(0,\)"),
    "x_steps": (_set("x", lambda x: x[:2]), r"dout has shape \(4, 3, 10\), expected \(2, 3, 10\)"),
    "weight_hh": (_set(("w", 1), _randn(4 * H, 1)), r"weight_hh has shape \(20, 1\)"),
    "lengths_over": (_set("lengths", torch.tensor([4, 9, 1])), r"lengths\[1\] is 9"),
    "mode": (_set("mode", -1), r"mode is -1"),
}


@pytest.mark.parametrize("case", list(LAYER_BACKWARD_BAD))
def test_layer_backward_rejects(ext, case):
    mutate, message = LAYER_BACKWARD_BAD[case]
    args = _backward_args(ext)
    _layer_backward(ext, args)
    mutate(args)
    with pytest.raises(ValueError, match=r"^layer_backward: .*" + message):
        _layer_backward(ext, args)


def test_layer_backward_checks_the_gru_saved_width(ext):
    args = _backward_args(ext, mode=3)
    _layer_backward(ext, args)
    args["saved"][0] = args["saved"][0][..., : 3 * H].contiguous()  # GRU keeps 4H per row
    with pytest.raises(ValueError, match=r"activations has shape \(4, 3, 15\), expected "
                                         r"\(4, 3, 20\)"):
        _layer_backward(ext, args)


def test_layer_backward_takes_a_strided_dout(ext):
    args = _backward_args(ext)
    want = _layer_backward(ext, args)
    got = _layer_backward(ext, {**args, "dout": _noncontiguous(args["dout"])})
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


# ---- the public fused_layer ----------------------------------------------------------------

def _fused_layer_call(**change):
    a = {"cell": "LSTM", "x": _randn(T, B, I), "h0": _randn(1, B, H), "c0": _randn(1, B, H),
         "weights": [(_randn(4 * H, I), _randn(4 * H, H), _randn(4 * H), _randn(4 * H))],
         "lengths": torch.tensor(LENGTHS)}
    a.update(change)
    return fused_layer(a["cell"], a["x"], a["h0"], a["c0"], a["weights"], a["lengths"])


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("change, error, message", [
    ({"lengths": torch.tensor([5, 2, 1])}, ValueError, r"^fused_layer: lengths\[0\] is 5"),
    ({"lengths": torch.tensor([4, 2, 0])}, ValueError, r"^fused_layer: lengths\[2\] is 0"),
    ({"lengths": torch.tensor([4, -1, 1])}, ValueError, r"^fused_layer: lengths\[1\] is -1"),
    ({"lengths": torch.tensor([4, 2])}, ValueError, r"^fused_layer: lengths has shape \(2,\)"),
    ({"lengths": torch.tensor([4.0, 2.5, 1.0])}, TypeError, r"lengths must be an integer"),
    ({"x": _randn(T, B, I + 2)}, ValueError,
     r"^fused_layer: weight_ih has shape \(20, 2\), expected \(20, 4\) .*input_size 4"),
    ({"weights": [(_randn(4 * H, I), _randn(4 * H, 1), None, None)]}, ValueError,
     r"^fused_layer: weight_hh has shape \(20, 1\), expected \(20, 5\) for mode LSTM with "
     r"hidden_size 5"),
    ({"h0": _randn(1, B + 1, H)}, ValueError, r"^fused_layer: h0 has shape \(1, 4, 5\)"),
    ({"c0": None}, ValueError, r"^fused_layer: c0 has shape \(0,\)"),
    ({"cell": "LSTM_FOO"}, ValueError, r"^fused_layer: cell must be one of"),
])
def test_fused_layer_rejects(change, error, message, grad):
    x = _randn(T, B, I).requires_grad_(grad)
    with pytest.raises(error, match=message):
        _fused_layer_call(**{"x": x, **change})


# ---- layers whose parameters were replaced -------------------------------------------------

# name -> (layer class, constructor arguments); the variants and the regularised standard
# layers run the variant kernels, the rest the fused engine.
LAYERS = {
    "lstm": (rk.LSTM, {}),
    "gru": (rk.GRU, {}),
    "rnn": (rk.RNN, {}),
    "rnn_relu": (rk.RNN, {"nonlinearity": "relu"}),
    "irnn": (rk.IRNN, {}),
    "peephole": (rk.PeepholeLSTM, {}),
    "ln_lstm": (rk.LayerNormLSTM, {}),
    "ln_gru": (rk.LayerNormGRU, {}),
    "leaky": (rk.LeakyRNN, {"learn_rate": True}),
    "skip": (rk.SkipRNN, {"delays": (1, 3)}),
    "lstm_zoneout": (rk.LSTM, {"zoneout": 0.2}),
    "gru_recurrent_dropout": (rk.GRU, {"recurrent_dropout": 0.3}),
}
PARAMETERS = [(kind, name) for kind, (cls, kw) in LAYERS.items()
              for name, _ in cls(I, H, bidirectional=True, **kw).named_parameters()]


def _base_name(name: str) -> str:
    """weight_hh_l0_reverse -> weight_hh: the name the kernels' messages use."""
    return name.split("_l0")[0]


@pytest.mark.parametrize("engine", ["auto", "fused"])
@pytest.mark.parametrize("kind, name", PARAMETERS)
def test_layer_with_a_replaced_parameter_of_the_wrong_shape_raises(kind, name, engine):
    cls, kw = LAYERS[kind]
    layer = cls(I, H, bidirectional=True, engine=engine, **kw)
    good = getattr(layer, name)
    wrong = list(good.shape)
    wrong[-1] += 1  # (G, I + 1), (G, H + 1), (G + 1,), (3, H + 1), ...
    setattr(layer, name, torch.nn.Parameter(torch.randn(wrong)))
    x = _randn(T, B, I, dtype=torch.float32)
    with torch.no_grad(), pytest.raises(ValueError, match=_base_name(name) + r"\b"):
        layer(x)
    with pytest.raises(ValueError, match=_base_name(name) + r"\b"):
        layer(x.requires_grad_())[0].sum().backward()


@pytest.mark.parametrize("kind", ["lstm", "gru", "ln_lstm", "skip"])
def test_layer_with_a_weight_of_another_dtype_raises(kind):
    cls, kw = LAYERS[kind]
    layer = cls(I, H, **kw)
    layer.weight_hh_l0 = torch.nn.Parameter(layer.weight_hh_l0.detach().double())
    with pytest.raises(ValueError, match=r"weight_hh has dtype Double, expected Float"):
        layer(_randn(T, B, I))


def test_the_issue_example_raises_instead_of_crashing():
    layer = rk.LSTM(4, 1024)
    layer.weight_hh_l0 = torch.nn.Parameter(torch.randn(4096, 1))
    with pytest.raises(ValueError, match=r"^fused_layer: weight_hh has shape \(4096, 1\), "
                       r"expected \(4096, 1024\) for mode LSTM with hidden_size 1024"):
        layer(torch.randn(3, 2, 4))


@pytest.mark.parametrize("kind", ["lstm", "ln_lstm", "skip"])
def test_layer_with_strided_parameters_matches_the_reference(kind):
    cls, kw = LAYERS[kind]
    fused = cls(I, H, **kw, engine="fused")
    ref = cls(I, H, **kw, engine="reference")
    ref.load_state_dict(fused.state_dict())
    for name, p in list(fused.named_parameters()):
        setattr(fused, name, torch.nn.Parameter(_noncontiguous(p.detach())))
    x = _randn(T, B, I)
    torch.testing.assert_close(fused(x)[0], ref(x)[0])


# ---- the sanitizer build flag --------------------------------------------------------------

def test_a_sanitized_build_has_flags_and_a_cache_folder_of_its_own(monkeypatch):
    from rnnkit.engine import _build

    monkeypatch.delenv("RNNKIT_SANITIZE", raising=False)
    plain_dir, plain_hash = _build.ENGINE.cache_dir(), _build.ENGINE.source_hash()
    assert "-fsanitize=address" not in _build._flags()[0]
    monkeypatch.setenv("RNNKIT_SANITIZE", "address")
    cflags, ldflags = _build._flags()
    assert "-fsanitize=address" in cflags and "-fsanitize=address" in ldflags
    sanitized_dir = _build.ENGINE.cache_dir()
    assert sanitized_dir.name.endswith("-address") and sanitized_dir.parent == plain_dir.parent
    assert _build.ENGINE.source_hash() != plain_hash  # the module's name differs too
    monkeypatch.setenv("RNNKIT_SANITIZE", "thread")
    with pytest.raises(ValueError, match=r"RNNKIT_SANITIZE must be one of \['address'\]"):
        _build.ENGINE.cache_dir()
