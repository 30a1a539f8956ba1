"""Memory safety of the variant kernels' entry points (dir_forward, dir_backward, skip_forward,
skip_backward): wrong shapes, dtypes, lengths, masks and saved tensors raise a ValueError naming
the argument (csrc/variants_checks.h); strided tensors are made contiguous."""

from __future__ import annotations

import pytest
import torch
from test_engine_safety import _set

T, B, I, H = 4, 3, 2, 5
LENGTHS = [4, 2, 1]
NO_MASK = torch.empty(0, dtype=torch.uint8)


def _noncontiguous(t: torch.Tensor) -> torch.Tensor:
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    return wide[..., ::2]


def _plain(gates: int) -> list[tuple[str, tuple[int, ...]]]:
    G = gates * H
    return [("weight_ih", (G, I)), ("weight_hh", (G, H)), ("bias_ih", (G,)), ("bias_hh", (G,))]


# cell code -> (gates, has c, the weights in param_specs order)
CELLS = {
    0: (1, False, _plain(1)),
    1: (1, False, _plain(1)),
    2: (4, True, _plain(4)),
    3: (3, False, _plain(3)),
    4: (4, True, _plain(4) + [("weight_peephole", (3, H))]),
    5: (4, True, _plain(4) + [("ln_ih_weight", (4 * H,)), ("ln_hh_weight", (4 * H,)),
                              ("ln_c_weight", (H,)), ("ln_ih_bias", (4 * H,)),
                              ("ln_hh_bias", (4 * H,)), ("ln_c_bias", (H,))]),
    6: (3, False, _plain(3) + [("ln_ih_weight", (3 * H,)), ("ln_hh_weight", (3 * H,)),
                               ("ln_ih_bias", (3 * H,)), ("ln_hh_bias", (3 * H,))]),
    7: (1, False, _plain(1) + [("rate_logit", (H,))]),
    8: (1, False, _plain(1) + [("rate_logit", (H,))]),
}


def _dir_args(cell: int, regularised: bool = True) -> dict:
    _, has_c, specs = CELLS[cell]
    return {
        "cell": cell, "x": torch.randn(T, B, I), "h0": torch.randn(B, H),
        "c0": torch.randn(B, H) if has_c else torch.empty(0),
        "w": [0.3 * torch.randn(shape) for _, shape in specs],
        "lengths": torch.tensor(LENGTHS),
        "h_drop": torch.rand(B, H) if regularised else torch.empty(0),
        "zh": (torch.rand(T, B, H) < 0.3).to(torch.uint8) if regularised else NO_MASK,
        "zc": (torch.rand(T, B, H) < 0.3).to(torch.uint8) if regularised and has_c else NO_MASK,
    }


def _dir_forward(ext, a: dict, keep: bool = True):
    return ext.dir_forward(a["cell"], a["x"], a["h0"], a["c0"], a["w"], a["lengths"], False,
                            a["h_drop"], a["zh"], a["zc"], 0.0, 0.0, keep)


WEIGHTS = [(cell, i) for cell, (_, _, specs) in CELLS.items() for i in range(len(specs))]


@pytest.mark.parametrize("cell, index", WEIGHTS)
def test_dir_forward_rejects_each_weight_of_the_wrong_shape(ext, cell, index):
    args = _dir_args(cell)
    _dir_forward(ext, args)
    name, shape = CELLS[cell][2][index]
    wrong = list(shape)
    wrong[-1] += 1
    args["w"][index] = torch.randn(wrong)
    with pytest.raises(ValueError, match=rf"^dir_forward: {name} has shape"):
        _dir_forward(ext, args)



DIR_FORWARD_BAD = {
    "cell": (_set("cell", 9), r"cell is 9"),
    "x_dtype": (_set("x", lambda x: x.double()), r"h0 has dtype Float, expected Double"),
    "x_meta": (_set("x", lambda x: x.to("meta")), r"x is on device meta"),
    "x_empty": (_set("x", lambda x: x[:0]), r"x has shape \(0, 3, 2\)"),
    "h0_batch": (_set("h0", lambda h: h[:2]), r"h0 has shape \(2, 5\), expected \(3, 5\)"),
    "c0_missing": (_set("c0", torch.empty(0)), r"c0 has shape \(0,\)"),
    "weight_dtype": (_set(("w", 1), lambda w: w.double()), r"weight_hh has dtype Double"),
    "weight_count": (_set("w", lambda w: w[:9]), r"got 9 weight tensors, expected 10 for LSTM_LN"),
    "bias_group": (_set(("w", 9), torch.empty(0)), r"ln_c_bias is empty but bias_ih is given"),
    "lengths_over": (_set("lengths", torch.tensor([4, 5, 1])), r"lengths\[1\] is 5"),
    "lengths_zero": (_set("lengths", torch.tensor([0, 2, 1])), r"lengths\[0\] is 0"),
    "lengths_dtype": (_set("lengths", lambda n: n.int()), r"lengths is Int"),
    "h_drop_shape": (_set("h_drop", lambda m: m[:, :4]), r"h_drop has shape \(3, 4\)"),
    "h_drop_dtype": (_set("h_drop", lambda m: m.double()), r"h_drop has dtype Double"),
    "zh_shape": (_set("zh", lambda m: m[:3]), r"zh has shape \(3, 3, 5\)"),
    "zh_bool": (_set("zh", lambda m: m.bool()), r"zh has dtype Bool, expected Byte"),
    "zc_shape": (_set("zc", lambda m: m[:, :, :2]), r"zc has shape \(4, 3, 2\)"),
}


@pytest.mark.parametrize("case", list(DIR_FORWARD_BAD))
def test_dir_forward_rejects(ext, case):
    mutate, message = DIR_FORWARD_BAD[case]
    args = _dir_args(5)  # the LayerNorm LSTM: the most parameters
    _dir_forward(ext, args)
    mutate(args)
    with pytest.raises(ValueError, match=r"^dir_forward: .*" + message):
        _dir_forward(ext, args)


@pytest.mark.parametrize("cell", [2, 5, 6])
def test_dir_forward_makes_strided_tensors_contiguous(ext, cell):
    args = _dir_args(cell)
    want = _dir_forward(ext, args, keep=False)[:3]
    strided = {**args, **{k: _noncontiguous(args[k]) for k in ("x", "h0", "h_drop", "zh")},
               "w": [_noncontiguous(w) for w in args["w"]]}
    for got, expected in zip(_dir_forward(ext, strided, keep=False)[:3], want, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def _dir_backward_args(ext, cell: int) -> dict:
    a = _dir_args(cell)
    res = _dir_forward(ext, a)
    has_c = CELLS[cell][1]
    return {**a, "saved": list(res[3:]), "dout": torch.randn(T, B, H),
            "dh": torch.randn(B, H), "dc": torch.randn(B, H) if has_c else torch.empty(0)}


def _dir_backward(ext, a: dict):
    return ext.dir_backward(a["cell"], a["x"], a["w"], a["lengths"], False, a["h_drop"],
                             a["zh"], a["zc"], 0.0, 0.0, a["saved"], a["dout"], a["dh"],
                             a["dc"], True)


DIR_BACKWARD_BAD = {
    "saved_count": (_set("saved", lambda s: s[:5]), r"got 5 saved tensors, expected 6"),
    "saved_rows": (_set(("saved", 0), lambda s: s[:, :, 1:].contiguous()), r"saved rows has shape"),
    "saved_h_in": (_set(("saved", 2), torch.empty(0)), r"h_in has shape \(0,\)"),
    "saved_c_prev": (_set(("saved", 3), lambda s: s[:, :2].contiguous()), r"c_prev has shape"),
    "saved_xhat": (_set(("saved", 4), lambda s: s[1:].contiguous()),
                   r"xhat has shape \(3, 3, 20\)"),
    "saved_rstd": (_set(("saved", 5), lambda s: s[1:]),
                   r"rstd has shape \(11,\), expected \(12,\)"),
    "saved_strided": (_set(("saved", 1), _noncontiguous), r"h_prev is not contiguous"),
    "dout": (_set("dout", lambda d: d[:, :, :4]), r"dout has shape \(4, 3, 4\)"),
    "dh_n": (_set("dh", lambda d: d[:2]), r"dh_n has shape \(2, 5\)"),
    "dc_n": (_set("dc", torch.empty(0)), r"dc_n has shape \(0,\)"),
    "weight_hh": (_set(("w", 1), torch.randn(4 * H, 1)), r"weight_hh has shape \(20, 1\)"),
    "lengths": (_set("lengths", torch.tensor([4, 2, 8])), r"lengths\[2\] is 8"),
}


@pytest.mark.parametrize("case", list(DIR_BACKWARD_BAD))
def test_dir_backward_rejects(ext, case):
    mutate, message = DIR_BACKWARD_BAD[case]
    args = _dir_backward_args(ext, 5)
    _dir_backward(ext, args)
    mutate(args)
    with pytest.raises(ValueError, match=r"^dir_backward: .*" + message):
        _dir_backward(ext, args)


# ---- the skip RNN ----------------------------------------------------------------------------

def _skip_args(delays=(1, 3)) -> dict:
    K = max(delays)
    return {
        "x": torch.randn(T, B, I), "reg0": torch.randn(B, K * H), "delays": list(delays),
        "w": [torch.randn(H, I)] + [0.3 * torch.randn(H, H) for _ in delays]
             + [torch.randn(H), torch.randn(H)],
        "lengths": torch.tensor(LENGTHS), "h_drop": torch.rand(B, H),
        "zh": (torch.rand(T, B, H) < 0.3).to(torch.uint8),
        "zp": (torch.rand(T, B, (K - 1) * H) < 0.3).to(torch.uint8),
    }


def _skip_forward(ext, a: dict, keep: bool = True):
    return ext.skip_forward(a["x"], a["reg0"], a["w"], a["delays"], False, a["lengths"], False,
                             a["h_drop"], a["zh"], a["zp"], 0.0, 0.0, keep)


SKIP_FORWARD_BAD = {
    "delays_unsorted": (_set("delays", [3, 1]), r"delays\[1\] is 1"),
    "delays_zero": (_set("delays", [0, 3]), r"delays\[0\] is 0"),
    "delays_empty": (_set("delays", []), r"delays is empty"),
    "delays_more": (_set("delays", [1, 2, 3]), r"got 5 weight tensors, expected 6"),
    "reg0_width": (_set("reg0", lambda r: r[:, 1:]), r"reg0 has shape \(3, 14\)"),
    "reg0_batch": (_set("reg0", lambda r: r[1:]), r"reg0 has shape \(2, 15\)"),
    "weight_ih": (_set(("w", 0), torch.randn(H, I + 1)), r"weight_ih has shape \(5, 3\)"),
    "weight_hh_d3": (_set(("w", 2), torch.randn(H, 1)), r"weight_hh_d3 has shape \(5, 1\)"),
    "bias": (_set(("w", 4), torch.empty(0)), r"bias_ih is given but bias_hh is empty"),
    "weight_dtype": (_set(("w", 1), lambda w: w.double()), r"weight_hh has dtype Double"),
    "lengths": (_set("lengths", torch.tensor([4, -2, 1])), r"lengths\[1\] is -2"),
    "zp_shape": (_set("zp", lambda m: m[:, :, :5]), r"zp has shape \(4, 3, 5\)"),
    "zh_shape": (_set("zh", lambda m: m[:, :1]), r"zh has shape \(4, 1, 5\)"),
    "h_drop": (_set("h_drop", lambda m: m.t()), r"h_drop has shape \(5, 3\)"),
}


@pytest.mark.parametrize("case", list(SKIP_FORWARD_BAD))
def test_skip_forward_rejects(ext, case):
    mutate, message = SKIP_FORWARD_BAD[case]
    args = _skip_args()
    _skip_forward(ext, args)
    mutate(args)
    with pytest.raises(ValueError, match=r"^skip_forward: .*" + message):
        _skip_forward(ext, args)


def _skip_backward(ext, a: dict):
    return ext.skip_backward(a["x"], a["w"], a["delays"], False, a["lengths"], False,
                              a["h_drop"], a["zh"], a["zp"], 0.0, 0.0, a["saved"], a["dout"],
                              a["dreg"], True)


SKIP_BACKWARD_BAD = {
    "saved_count": (_set("saved", lambda s: s[:1]), r"got 1 saved tensors, expected 2"),
    "saved_v": (_set(("saved", 0), lambda s: s[:, :, :4].contiguous()), r"v has shape"),
    "saved_register": (_set(("saved", 1), lambda s: s[:, :, :10].contiguous()),
                       r"register has shape \(4, 3, 10\), expected \(4, 3, 15\)"),
    "dout": (_set("dout", lambda d: d[:2]), r"dout has shape \(2, 3, 5\)"),
    "dreg_n": (_set("dreg", lambda d: d[:, :7]), r"dreg_n has shape \(3, 7\)"),
    "delays": (_set("delays", [1, 4]), r"dreg_n has shape \(3, 15\), expected \(B, K\*H\) with "
                                       r"K = 4"),
}


@pytest.mark.parametrize("case", list(SKIP_BACKWARD_BAD))
def test_skip_backward_rejects(ext, case):
    mutate, message = SKIP_BACKWARD_BAD[case]
    args = _skip_args()
    res = _skip_forward(ext, args)
    args.update(saved=list(res[2:]), dout=torch.randn(T, B, H), dreg=torch.randn(B, 3 * H))
    _skip_backward(ext, args)
    mutate(args)
    with pytest.raises(ValueError, match=r"^skip_backward: .*" + message):
        _skip_backward(ext, args)
