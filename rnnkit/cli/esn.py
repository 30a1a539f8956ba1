"""`rnnkit esn`: an echo state network predicting the chaotic Mackey-Glass series."""

from __future__ import annotations

import argparse

import torch

from rnnkit.lab import mackey_glass
from rnnkit.layers.esn import EchoStateNetwork

__all__ = ["add_parser", "run"]


def run(reservoir: int = 500, train: int = 4000, test: int = 1000, washout: int = 200,
        spectral_radius: float = 0.9, leak_rate: float = 1.0, ridge: float = 1e-8,
        generate: int = 0, seed: int = 0) -> dict[str, float]:
    """Fit the readout on `train` steps of one-step prediction; report test NRMSE."""
    series = mackey_glass(train + test + 1)
    x, y = series[:-1].reshape(-1, 1, 1), series[1:].reshape(-1, 1, 1)
    esn = EchoStateNetwork(1, reservoir, 1, spectral_radius=spectral_radius,
                           leak_rate=leak_rate, bias_scaling=0.2, seed=seed)
    info = esn.fit(x[:train], y[:train], ridge=ridge, washout=washout)
    with torch.no_grad():
        pred = esn(x)[train:]
    target = y[train:]
    result = {"train_nrmse": info["train_nrmse"], "fit_seconds": info["seconds"],
              "test_nrmse": _nrmse(pred, target)}
    print(f"Mackey-Glass (tau=17), reservoir {reservoir}: readout fitted in "
          f"{info['seconds']:.2f}s; one-step NRMSE train {info['train_nrmse']:.2e}, "
          f"test {result['test_nrmse']:.2e}")
    if generate:
        free = esn.generate(x[:train + 1], generate)  # continues from y[train]
        err = _nrmse(free, y[train:train + generate])
        result["generate_nrmse"] = err
        print(f"free-running for {generate} steps (own predictions fed back): NRMSE {err:.2e}")
    return result


def _nrmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return ((pred - target).pow(2).mean() / target.var()).sqrt().item()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("esn", help="echo state network on the Mackey-Glass series")
    p.add_argument("--reservoir", type=int, default=500, help="reservoir units")
    p.add_argument("--train", type=int, default=4000, help="training steps")
    p.add_argument("--test", type=int, default=1000, help="test steps")
    p.add_argument("--spectral-radius", type=float, default=0.9)
    p.add_argument("--leak-rate", type=float, default=1.0)
    p.add_argument("--ridge", type=float, default=1e-8)
    p.add_argument("--generate", type=int, default=0, help="also run free for N steps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError

    for name in ("reservoir", "train", "test"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.generate < 0:
        raise UserError(f"--generate must be >= 0, got {args.generate}")
    if args.train <= 200:
        raise UserError(f"--train must exceed the 200 washout steps, got {args.train}")
    if args.generate > args.test:
        raise UserError(f"--generate must be <= --test={args.test}, got {args.generate}")
    if not 0 < args.spectral_radius < float("inf"):
        raise UserError(f"--spectral-radius must be a positive number, got "
                        f"{args.spectral_radius}")
    if not 0 < args.leak_rate <= 1:
        raise UserError(f"--leak-rate must be in (0, 1], got {args.leak_rate}")
    if not 0 <= args.ridge < float("inf"):
        raise UserError(f"--ridge must be >= 0, got {args.ridge}")
    run(args.reservoir, args.train, args.test, spectral_radius=args.spectral_radius,
        leak_rate=args.leak_rate, ridge=args.ridge, generate=args.generate, seed=args.seed)
    return 0
