"""Echo state network: reservoir construction, closed-form readout, Mackey-Glass prediction."""

from __future__ import annotations

import pytest
import torch

from rnnkit.cli import main
from rnnkit.cli.esn import run
from rnnkit.lab import mackey_glass
from rnnkit.layers.esn import EchoStateNetwork


def test_reservoir_has_the_requested_spectral_radius_and_density():
    esn = EchoStateNetwork(2, 200, 1, spectral_radius=0.7, density=0.05, seed=1)
    radius = torch.linalg.eigvals(esn.weight_hh).abs().max().item()
    assert radius == pytest.approx(0.7, rel=1e-9)
    assert 0.03 < (esn.weight_hh != 0).float().mean().item() < 0.07
    assert [n for n, _ in esn.named_parameters()] == ["readout.weight", "readout.bias"]


def test_same_seed_same_reservoir():
    a, b = EchoStateNetwork(1, 30, 1, seed=5), EchoStateNetwork(1, 30, 1, seed=5)
    assert torch.equal(a.weight_hh, b.weight_hh) and torch.equal(a.weight_ih, b.weight_ih)


def test_states_follow_the_leaky_update():
    esn = EchoStateNetwork(1, 20, 1, leak_rate=0.3, bias_scaling=0.5, seed=0)
    x = torch.randn(4, 2, 1, dtype=torch.float64)
    s = esn.states(x)
    h = torch.zeros(2, 20, dtype=torch.float64)
    for t in range(4):
        v = torch.tanh(x[t] @ esn.weight_ih.T + h @ esn.weight_hh.T + esn.bias)
        h = 0.7 * h + 0.3 * v
        torch.testing.assert_close(s[t], h)


def test_ridge_readout_solves_a_linear_target_exactly():
    """A target that is a linear function of the states is recovered by the readout."""
    esn = EchoStateNetwork(1, 40, 2, seed=0)
    x = torch.randn(300, 1, 1, dtype=torch.float64)
    w = torch.randn(2, 40, dtype=torch.float64)
    y = esn.states(x) @ w.T + torch.tensor([0.5, -1.0], dtype=torch.float64)
    info = esn.fit(x, y, ridge=1e-12, washout=10)
    assert info["train_nrmse"] < 1e-5
    torch.testing.assert_close(esn.readout.weight, w, rtol=1e-4, atol=1e-4)


def test_mackey_glass_is_bounded_and_chaotic_looking():
    s = mackey_glass(2000)
    assert 0.2 < s.min() < 0.6 and 1.1 < s.max() < 1.5
    assert s.std() > 0.15


def test_esn_predicts_mackey_glass():
    result = run(reservoir=200, train=1500, test=300, washout=100)
    assert result["test_nrmse"] < 0.01


def test_esn_fit_rejects_mismatched_target():
    esn = EchoStateNetwork(1, 10, 1, seed=0)
    with pytest.raises(ValueError, match="leading"):
        esn.fit(torch.zeros(5, 1, 1), torch.zeros(4, 1, 1), washout=0)


def test_esn_command(capsys):
    assert main(["esn", "--reservoir", "50", "--train", "300", "--test", "50"]) == 0
    assert "one-step NRMSE" in capsys.readouterr().out
