"""Recurrent (variational) dropout and zoneout: masks, train/eval behaviour, determinism."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk

T, B, I, H = 6, 3, 3, 4


def _twin(cls, **kwargs):
    """A regularised layer and the same weights without regularisation."""
    reg = cls(I, H, engine="reference", **kwargs).double()
    plain = cls(I, H, engine="reference").double()
    plain.load_state_dict(reg.state_dict())
    return reg, plain


@pytest.mark.parametrize("cls", [rk.LSTM, rk.GRU, rk.RNN, rk.LayerNormLSTM, rk.PeepholeLSTM])
def test_recurrent_dropout_is_off_in_eval_and_seeded_in_training(cls):
    reg, plain = _twin(cls, recurrent_dropout=0.5)
    x = torch.randn(T, B, I, dtype=torch.float64)
    reg.eval()
    torch.testing.assert_close(reg(x)[0], plain(x)[0])
    reg.train()
    torch.manual_seed(3)
    a = reg(x)[0]
    torch.manual_seed(3)
    b = reg(x)[0]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, plain(x)[0])
    assert not torch.allclose(a, reg(x)[0])  # a new mask for a new call


def test_recurrent_dropout_uses_one_mask_per_sequence():
    """Written out: the recurrent product sees h * m with the same m at every step."""
    layer = rk.RNN(I, H, recurrent_dropout=0.5, engine="reference").double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(7)
    out, _ = layer(x)
    torch.manual_seed(7)
    m = torch.bernoulli(torch.full((B, H), 0.5, dtype=torch.float64)) / 0.5
    h = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        h = torch.tanh(x[t] @ layer.weight_ih_l0.T + layer.bias_ih_l0
                       + (h * m) @ layer.weight_hh_l0.T + layer.bias_hh_l0)
        torch.testing.assert_close(out[t], h)


def test_gru_recurrent_dropout_keeps_the_carried_state_whole():
    """With every unit dropped, the GRU still carries z * h_{t-1}: h is not zeroed."""
    layer = rk.GRU(I, H, recurrent_dropout=0.5, engine="reference").double()
    cell = rk.GRUCell(I, H).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x, h0 = torch.randn(1, B, I, dtype=torch.float64), torch.randn(1, B, H, dtype=torch.float64)
    zeros = torch.zeros(B, H, dtype=torch.float64)
    expected = rk.GRUCell.step(x[0], cell.State(h0[0]), cell.params(), h_drop=zeros).h
    r_z = torch.sigmoid(x[0] @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh)
    z = r_z[:, H:2 * H]
    n = torch.tanh((x[0] @ cell.weight_ih.T + cell.bias_ih)[:, 2 * H:]
                   + r_z[:, :H] * cell.bias_hh[2 * H:])
    torch.testing.assert_close(expected, (1 - z) * n + z * h0[0])


def test_zoneout_eval_is_the_expectation():
    reg, plain = _twin(rk.GRU, zoneout=0.25)
    reg.eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    out, _ = reg(x)
    h = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        new = plain(x[t:t + 1], h.unsqueeze(0))[1][0]
        h = 0.25 * h + 0.75 * new
        torch.testing.assert_close(out[t], h)


def test_zoneout_training_keeps_or_updates_each_unit():
    """At the first step each unit is either its previous value (0) or the plain update,
    and with rate 0.5 both happen."""
    reg, plain = _twin(rk.RNN, zoneout=0.5)
    x = torch.randn(T, 8, I, dtype=torch.float64)
    out, _ = reg(x)
    new = plain(x[:1])[0][0]
    kept = out[0] == 0
    updated = out[0] == new
    assert (kept | updated).all()
    assert kept.any() and updated.any()


def test_zoneout_rates_and_errors():
    assert rk.LSTM(I, H, zoneout=0.1).zoneout == (0.1, 0.1)
    with pytest.raises(ValueError, match="one rate or one per state field"):
        rk.LSTM(I, H, zoneout=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\)"):
        rk.GRU(I, H, recurrent_dropout=1.0)


@pytest.mark.parametrize("cls", [rk.LSTM, rk.GRU])
def test_regularised_layers_run_fused_with_the_reference_masks(cls):
    """The fused engine draws the same masks in the same order as the reference path."""
    fused = cls(I, H, num_layers=2, recurrent_dropout=0.3, zoneout=0.2, engine="fused").double()
    ref = cls(I, H, num_layers=2, recurrent_dropout=0.3, zoneout=0.2,
              engine="reference").double()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(fused, mode)()
        getattr(ref, mode)()
        torch.manual_seed(5)
        a = fused(x)[0]
        torch.manual_seed(5)
        torch.testing.assert_close(a, ref(x)[0], rtol=1e-10, atol=1e-12)
