"""Synthetic tasks and the `rnnkit demo` command that trains on one."""

from __future__ import annotations

import torch

from rnnkit.cli import main
from rnnkit.cli.demo import run
from rnnkit.lab import adding_problem, copy_problem


def test_adding_problem_target_is_sum_of_the_two_marked_values():
    x, y = adding_problem(16, 10, torch.Generator().manual_seed(3))
    assert x.shape == (10, 16, 2)
    markers = x[..., 1]
    assert torch.equal(markers.sum(0), torch.full((16,), 2.0))
    assert torch.equal(markers[:5].sum(0), torch.ones(16))  # one mark in each half
    torch.testing.assert_close((x[..., 0] * markers).sum(0), y)


def test_copy_problem_target_repeats_the_data_after_the_cue():
    x, y = copy_problem(4, delay=5, n_symbols=6, n_copy=3, generator=torch.Generator())
    assert x.shape == y.shape == (11, 4)
    torch.testing.assert_close(y[-3:], x[:3])
    assert torch.equal(x[3 + 5 - 1], torch.full((4,), 7))
    assert not y[:-3].any()


def test_lstm_learns_the_adding_problem():
    mse = run(length=8, steps=400, hidden_size=16, batch=32, lr=1e-2, log_every=400)
    assert mse < 0.02  # a constant predictor scores ~0.167


def test_demo_command_prints_losses(capsys):
    assert main(["demo", "--steps", "3", "--length", "5", "--hidden-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "adding problem, T=5" in out and "step     3" in out
