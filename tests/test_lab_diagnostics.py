"""Gradient and gate diagnostics of whole layers, through the fused engine."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import rnnkit as rk
from rnnkit.lab.diagnostics import (
    gate_saturation,
    gradient_share,
    spectral_radius,
    state_gradient_norms,
)
from rnnkit.lab.gradients import gradient_flow
from rnnkit.lab.plots import plot_gradient_heatmap, plot_gradient_profiles


def test_layer_norms_equal_the_cell_recursion():
    """The fused layer stepped in time gives the BPTT norms of the same weights as a cell."""
    layer = rk.RNN(3, 5, engine="fused").double()
    cell = rk.RNNCell(3, 5).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(12, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(state_gradient_norms(layer, x), gradient_flow(cell, x))


def test_vanishing_profile_for_tanh_and_not_for_the_chrono_lstm():
    torch.manual_seed(0)
    x = torch.randn(100, 8, 8, dtype=torch.float64)
    tanh = state_gradient_norms(rk.RNN(8, 64).double(), x)
    lstm = state_gradient_norms(rk.LSTM(8, 64, chrono=100).double(), x)
    ratio_tanh, ratio_lstm = (tanh[0] / tanh[-1]).item(), (lstm[0] / lstm[-1]).item()
    assert ratio_tanh < 1e-12 < 1e-5 < ratio_lstm  # orders of magnitude apart
    share = gradient_share(lstm)
    assert share.sum().item() == pytest.approx(1.0)


def test_gate_saturation_counts_the_gates_the_cell_computes():
    torch.manual_seed(1)
    layer = rk.LSTM(3, 4).double()
    x = 3 * torch.randn(7, 2, 3, dtype=torch.float64)
    got = gate_saturation(layer, x)
    w_ih, w_hh, b_ih, b_hh = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, \
        layer.bias_hh_l0
    h = c = torch.zeros(2, 4, dtype=torch.float64)
    acts = []
    with torch.no_grad():
        for t in range(7):  # torch.nn.LSTMCell's equations, written out
            i, f, g, o = (F.linear(x[t], w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, -1)
            acts.append(torch.sigmoid(torch.stack([i, f, o])))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
    acts = torch.stack(acts, 1)  # (3 gates, T, B, H)
    for j, name in enumerate(("input", "forget", "output")):
        assert got[name]["below"] == pytest.approx((acts[j] < 0.05).double().mean().item())
        assert got[name]["above"] == pytest.approx((acts[j] > 0.95).double().mean().item())
    with torch.no_grad():
        layer.bias_ih_l0[4:8] = 50.0  # forget gate pinned open
    assert gate_saturation(layer, x)["forget"]["above"] == 1.0
    with pytest.raises(ValueError, match="LayerNormLSTM"):
        gate_saturation(rk.LayerNormLSTM(3, 4), x.float())


def test_spectral_radius_per_layer_and_gate():
    assert spectral_radius(rk.IRNN(3, 6, scale=0.5))["l0"] == pytest.approx(0.5)
    radii = spectral_radius(rk.GRU(3, 6, num_layers=2, bidirectional=True))
    assert set(radii) == {f"l{k}{r}.{g}" for k in (0, 1) for r in ("", "_reverse")
                          for g in "rzn"}


def test_plots_write_pngs(tmp_path):
    norms = [torch.rand(10) + 0.1 for _ in range(3)]
    heat = plot_gradient_heatmap([0, 10, 20], norms, tmp_path / "heat.png")
    curves = plot_gradient_profiles({"a": norms[0], "b": norms[1]}, tmp_path / "flow.png")
    for path in (heat, curves):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="one norm curve per training step"):
        plot_gradient_heatmap([0], norms, tmp_path / "bad.png")
