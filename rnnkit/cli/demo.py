"""`rnnkit demo`: train a small LSTM on the adding problem and watch the loss fall."""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import rnnkit as rk
from rnnkit.lab import adding_problem

__all__ = ["add_parser", "run"]


class _Regressor(nn.Module):
    """Many-to-one: the final hidden state predicts one number."""

    def __init__(self, cell: str, hidden_size: int) -> None:
        super().__init__()
        self.rnn = {"lstm": rk.LSTM, "gru": rk.GRU, "rnn": rk.RNN}[cell](2, hidden_size)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (T, B, H)
        return self.head(out[-1]).squeeze(-1)  # (B,)


def run(cell: str = "lstm", length: int = 30, hidden_size: int = 64, steps: int = 1000,
        batch: int = 64, lr: float = 3e-3, seed: int = 0, log_every: int = 100) -> float:
    """Train on the adding problem; returns the final test MSE (baseline ~0.167)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _Regressor(cell, hidden_size)
    from rnnkit.train.lm import prepare_engine

    prepare_engine(model)  # build or load the engine first: the timings below count training
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_test, y_test = adding_problem(512, length, gen)
    print(f"adding problem, T={length}: predicting a constant gives MSE ~0.167")
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = adding_problem(batch, length, gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                test = nn.functional.mse_loss(model(x_test), y_test).item()
            print(f"step {step:5d}  train mse {loss.item():.4f}  test mse {test:.4f}  "
                  f"({time.perf_counter() - start:.1f}s)", flush=True)
    return test


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="train a small LSTM on the adding problem")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    p.add_argument("--length", type=int, default=30, help="sequence length T")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError

    for name in ("length", "hidden_size", "steps"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got "
                            f"{getattr(args, name)}")
    run(args.cell, args.length, args.hidden_size, args.steps, seed=args.seed)
    return 0
