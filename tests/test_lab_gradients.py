"""Gradient-flow diagnostics against the BPTT equations written out by hand."""

from __future__ import annotations

import torch

import rnnkit as rk
from rnnkit.cli import main
from rnnkit.lab.gradients import decay_per_step, gradient_flow


def test_gradient_flow_equals_the_bptt_recursion_for_a_tanh_rnn():
    """dL/dh_t = (dL/dh_{t+1} * (1 - h_{t+1}^2)) W_hh, from dL/dh_T = probe."""
    cell = rk.RNNCell(3, 5).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    norms = gradient_flow(cell, x)
    hs, h = [], torch.zeros(2, 5, dtype=torch.float64)
    with torch.no_grad():
        for t in range(6):
            h = cell.next_state(x[t], h).h
            hs.append(h)
    g = torch.randn(2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = [g.norm(dim=-1).mean()]
    for t in range(4, -1, -1):
        g = (g * (1 - hs[t + 1] ** 2)) @ cell.weight_hh
        expected.insert(0, g.norm(dim=-1).mean())
    torch.testing.assert_close(norms, torch.stack(expected))


def test_decay_rate_of_a_geometric_sequence():
    norms = 0.8 ** torch.arange(30, 0, -1, dtype=torch.float64)  # ||dL/dh_t|| = 0.8^(T-t)
    assert abs(decay_per_step(norms, skip=0) - 0.8) < 1e-9


def test_small_recurrent_weights_vanish_identity_relu_does_not():
    x = torch.randn(60, 4, 3, dtype=torch.float64)
    small = rk.RNNCell(3, 16).double()
    with torch.no_grad():
        small.weight_hh.mul_(0.3)
    irnn = rk.init.identity_(rk.RNNCell(3, 16, nonlinearity="relu")).double()
    with torch.no_grad():
        irnn.bias_ih.fill_(0.1)  # keep the ReLUs open
    assert decay_per_step(gradient_flow(small, x)) < 0.7
    assert decay_per_step(gradient_flow(irnn, x)) > 0.95


def test_lab_command(capsys):
    assert main(["lab", "gradients", "--length", "12", "--hidden-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "chrono" in out and "rate/step" in out
