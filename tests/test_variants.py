"""The cell zoo: each variant against its equations written out independently, plus init rules."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit.cells import SkipState

T, B, I, H = 5, 2, 3, 4
f64 = torch.float64


def _randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def _ln(a):
    mu = a.mean(-1, keepdim=True)
    var = a.var(-1, unbiased=False, keepdim=True)
    return (a - mu) / torch.sqrt(var + 1e-5)


def test_peephole_lstm_cell_equations():
    cell = rk.PeepholeLSTMCell(I, H).double()
    _randomise(cell)
    x, h, c = (torch.randn(B, n, dtype=f64) for n in (I, H, H))
    W, U, b = cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh
    pre = x @ W.T + h @ U.T + b
    i = torch.sigmoid(pre[:, :H] + cell.weight_peephole[0] * c)
    f = torch.sigmoid(pre[:, H:2 * H] + cell.weight_peephole[1] * c)
    c_new = f * c + i * torch.tanh(pre[:, 2 * H:3 * H])
    o = torch.sigmoid(pre[:, 3 * H:] + cell.weight_peephole[2] * c_new)
    got = cell(x, (h, c))
    torch.testing.assert_close(got.c, c_new)
    torch.testing.assert_close(got.h, o * torch.tanh(c_new))


def test_layernorm_lstm_cell_equations():
    cell = rk.LayerNormLSTMCell(I, H).double()
    _randomise(cell)
    x, h, c = (torch.randn(B, n, dtype=f64) for n in (I, H, H))
    pre = (_ln(x @ cell.weight_ih.T) * cell.ln_ih_weight + cell.ln_ih_bias
           + _ln(h @ cell.weight_hh.T) * cell.ln_hh_weight + cell.ln_hh_bias
           + cell.bias_ih + cell.bias_hh)
    i, f, g, o = pre.split(H, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(_ln(c_new) * cell.ln_c_weight + cell.ln_c_bias)
    got = cell(x, (h, c))
    torch.testing.assert_close(got.c, c_new)
    torch.testing.assert_close(got.h, h_new)


def test_layernorm_gru_cell_equations():
    cell = rk.LayerNormGRUCell(I, H).double()
    _randomise(cell)
    x, h = torch.randn(B, I, dtype=f64), torch.randn(B, H, dtype=f64)
    a_x = _ln(x @ cell.weight_ih.T) * cell.ln_ih_weight + cell.ln_ih_bias + cell.bias_ih
    a_h = _ln(h @ cell.weight_hh.T) * cell.ln_hh_weight + cell.ln_hh_bias + cell.bias_hh
    r = torch.sigmoid(a_x[:, :H] + a_h[:, :H])
    z = torch.sigmoid(a_x[:, H:2 * H] + a_h[:, H:2 * H])
    n = torch.tanh(a_x[:, 2 * H:] + r * a_h[:, 2 * H:])
    torch.testing.assert_close(cell(x, h), (1 - z) * n + z * h)


def test_layernorm_starts_as_identity_scaling():
    cell = rk.LayerNormLSTMCell(I, H)
    assert torch.equal(cell.ln_ih_weight, torch.ones(4 * H))
    assert torch.equal(cell.ln_c_bias, torch.zeros(H))


def test_leaky_cell_with_rate_one_is_a_vanilla_rnn():
    leaky = rk.LeakyRNNCell(I, H, rate=1.0).double()
    plain = rk.RNNCell(I, H).double()
    plain.load_state_dict({k: v for k, v in leaky.state_dict().items() if k != "rate_logit"})
    x, h = torch.randn(B, I, dtype=f64), torch.randn(B, H, dtype=f64)
    torch.testing.assert_close(leaky(x, h), plain(x, h), rtol=1e-5, atol=1e-6)


def test_leaky_cell_mixes_old_state_and_proposal():
    cell = rk.LeakyRNNCell(I, H, rate=(0.1, 0.8)).double()
    x, h = torch.randn(B, I, dtype=f64), torch.randn(B, H, dtype=f64)
    a = torch.sigmoid(cell.rate_logit)
    torch.testing.assert_close(a[[0, -1]], torch.tensor([0.1, 0.8], dtype=f64))
    v = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    torch.testing.assert_close(cell(x, h), (1 - a) * h + a * v)


def test_leaky_rates_fixed_or_learned():
    fixed = rk.LeakyRNN(I, H, rate=0.3)
    learned = rk.LeakyRNN(I, H, rate=0.3, learn_rate=True)
    assert not fixed.rate_logit_l0.requires_grad and learned.rate_logit_l0.requires_grad
    learned(torch.randn(T, B, I))[0].sum().backward()
    assert learned.rate_logit_l0.grad.abs().sum() > 0


def test_skip_cell_reads_the_state_d_steps_back():
    """Unrolled by hand: h_t = tanh(W x_t + b + U1 h_{t-1} + U3 h_{t-3})."""
    layer = rk.SkipRNN(I, H, delays=(1, 3), engine="reference").double()
    x = torch.randn(T, B, I, dtype=f64)
    out, (h_n, past) = layer(x)
    hs = [torch.zeros(B, H, dtype=f64)] * 3
    for t in range(T):
        a = (x[t] @ layer.weight_ih_l0.T + layer.bias_ih_l0 + layer.bias_hh_l0
             + hs[-1] @ layer.weight_hh_l0.T + hs[-3] @ layer.weight_hh_d3_l0.T)
        hs.append(torch.tanh(a))
        torch.testing.assert_close(out[t], hs[-1])
    torch.testing.assert_close(past[0], torch.cat([hs[-2], hs[-3]], dim=1))


def test_skip_cell_state_layout():
    cell = rk.SkipRNNCell(I, H, delays=(2, 5))
    state = cell.init_state(B)
    assert isinstance(state, SkipState) and state.past.shape == (B, 4 * H)
    assert not hasattr(cell, "weight_hh")  # delay 1 not used
    with pytest.raises(ValueError, match="delays must be a non-empty sequence of ints >= 1"):
        rk.SkipRNNCell(I, H, delays=(0,))


def test_irnn_initialisation():
    irnn = rk.IRNN(I, 64, scale=0.5, num_layers=2)
    assert torch.equal(irnn.weight_hh_l1, 0.5 * torch.eye(64))
    assert not irnn.bias_ih_l0.any() and not irnn.bias_hh_l1.any()
    assert irnn.weight_ih_l0.std() < 0.01
    assert irnn.mode == "RNN_RELU"


def test_irnn_rejects_unknown_options():
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        rk.IRNN(I, H, nonlinearity="tanh")


@pytest.mark.parametrize("cls", [rk.LSTM, rk.GRU])
def test_forget_bias(cls):
    layer = cls(I, H, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, p in layer.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.equal(p[H:2 * H], torch.ones(H)), name
        if name.startswith("bias_hh"):
            assert torch.equal(p[H:2 * H], torch.zeros(H)), name


def test_chrono_init_lstm():
    t_max = 50
    layer = rk.LSTM(I, 256, chrono=t_max)
    b_f = layer.bias_ih_l0[256:512]
    assert b_f.min() >= 0 and b_f.max() <= torch.log(torch.tensor(t_max - 1.0))
    torch.testing.assert_close(layer.bias_ih_l0[:256], -b_f)
    assert not layer.bias_hh_l0[:512].any()
    # forgetting times 1/(1 - sigmoid(b_f)) spread up to about t_max
    assert (1 / (1 - torch.sigmoid(b_f))).max() > t_max / 2


def test_chrono_and_forget_bias_are_exclusive():
    with pytest.raises(ValueError, match="not both"):
        rk.LSTM(I, H, forget_bias=1.0, chrono=10)


VARIANTS = {
    "peephole": (rk.PeepholeLSTM, {}),
    "ln_lstm": (rk.LayerNormLSTM, {}),
    "ln_gru": (rk.LayerNormGRU, {}),
    "leaky": (rk.LeakyRNN, {"rate": (0.2, 0.9), "learn_rate": True}),
    "skip": (rk.SkipRNN, {"delays": (1, 2)}),
    "irnn": (rk.IRNN, {}),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_layer_gradcheck_with_lengths(name):
    cls, kwargs = VARIANTS[name]
    layer = cls(I, H, bidirectional=True, engine="reference", **kwargs).double()
    _randomise(layer)
    x = torch.randn(T, 3, I, dtype=f64, requires_grad=True)
    lengths = torch.tensor([5, 2, 3])
    names, params = zip(*layer.named_parameters(), strict=True)

    def fn(x, *ps):
        out, state = torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,),
                                                {"lengths": lengths})
        return out, *(state if isinstance(state, tuple) else (state,))

    assert torch.autograd.gradcheck(fn, (x, *params))


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_layer_chunks_and_lengths(name):
    cls, kwargs = VARIANTS[name]
    layer = cls(I, H, num_layers=2, engine="reference", **kwargs).double()
    x = torch.randn(6, 3, I, dtype=f64)
    whole, s_whole = layer(x)
    first, s = layer(x[:2])
    second, s_end = layer(x[2:], s)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    out, _ = layer(x, lengths=torch.tensor([6, 2, 4]))
    torch.testing.assert_close(out[:2, 1], layer(x[:2, 1:2])[0][:, 0])
    assert not out[2:, 1].any()


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_state_dict_roundtrip(name):
    cls, kwargs = VARIANTS[name]
    a, b = cls(I, H, **kwargs), cls(I, H, **kwargs)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(T, B, I)
    torch.testing.assert_close(a(x)[0], b(x)[0])
