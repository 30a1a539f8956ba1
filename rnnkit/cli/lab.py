"""`rnnkit lab gradients`: watch gradients vanish or explode through time, cell by cell."""

from __future__ import annotations

import argparse

import torch

from rnnkit import init
from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.lab.gradients import decay_per_step, gradient_flow

__all__ = ["add_parser", "run_gradients", "CELLS"]

# rnn: tanh RNN, W_hh scaled to spectral radius ~ scale; irnn: identity-initialised ReLU RNN;
# lstm: forget bias 1; chrono: LSTM with chrono init for T_max = length; gru: torch.nn init.
CELLS = ("rnn", "irnn", "lstm", "chrono", "gru")


def _cell(name: str, input_size: int, hidden_size: int, scale: float, length: int
          ) -> torch.nn.Module:
    if name == "rnn":
        cell = RNNCell(input_size, hidden_size)
        with torch.no_grad():  # recurrent matrix with spectral radius ~ scale
            cell.weight_hh.normal_(0, scale / hidden_size ** 0.5)
        return cell
    if name == "irnn":
        cell = RNNCell(input_size, hidden_size, nonlinearity="relu")
        init.identity_(cell, scale=scale)
        return cell
    if name == "lstm":
        return init.forget_bias_(LSTMCell(input_size, hidden_size), 1.0)
    if name == "chrono":
        return init.chrono_(LSTMCell(input_size, hidden_size), t_max=length)
    return GRUCell(input_size, hidden_size)


def run_gradients(cells: list[str], length: int = 100, hidden_size: int = 64,
                  scale: float = 1.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Print ||dL/dh_t|| at a few distances from the loss, per cell; return the norms."""
    torch.manual_seed(seed)
    x = torch.randn(length, 16, 8, dtype=torch.float64)
    results = {}
    marks = [d for d in (0, 1, 5, 10, 25, 50, 100, 200, 500) if d < length]
    print(f"||dL/dh_t|| for a loss on h_T, T={length}, H={hidden_size}, scale={scale}")
    print(f"{'cell':>6} " + " ".join(f"{'T-' + str(d):>9}" for d in marks) + "  rate/step")
    for name in cells:
        cell = _cell(name, 8, hidden_size, scale, length).double()
        norms = gradient_flow(cell, x)
        results[name] = norms
        row = " ".join(f"{norms[length - 1 - d].item():9.2e}" for d in marks)
        print(f"{name:>6} {row}  {decay_per_step(norms):.3f}")
    return results


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lab", help="classic experiments (rnnkit lab gradients)")
    sub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    g = sub.add_parser("gradients", help="vanishing / exploding gradients through time")
    g.add_argument("--cells", default=",".join(CELLS),
                   help=f"comma-separated, from: {', '.join(CELLS)}")
    g.add_argument("--length", type=int, default=100)
    g.add_argument("--hidden-size", type=int, default=64)
    g.add_argument("--scale", type=float, default=1.0,
                   help="rnn: spectral radius of W_hh; irnn: identity scale")
    g.set_defaults(func=_main)
    _add_task_commands(sub)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _add_task_commands(sub: argparse._SubParsersAction) -> None:
    """`rnnkit lab adding|copy|temporal-order|pixels`: a LabConfig run per task (its fields
    as flags, `--preset tiny`, `--config FILE.json`)."""
    import dataclasses

    from rnnkit.cli.train import add_config_task
    from rnnkit.lab.experiments import TASKS, TINY, LabConfig, baseline, main
    from rnnkit.train.config import option

    for task in TASKS:
        config_cls = dataclasses.make_dataclass(
            f"LabConfig_{task.replace('-', '_')}",
            [("task", str, option(task, "the task (fixed by the command)", (task,)))],
            bases=(LabConfig,))
        add_config_task(
            sub, task, config_cls, main, help=f"train a cell on the {task} task",
            description=f"Train one recurrent cell on the {task} task and report its loss "
                        f"against the no-memory baseline (e.g. {baseline(task, 200):.4f} at "
                        "T = 200 for this task).",
            presets={"tiny": TINY})


def _main(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError

    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        raise UserError(f"--cells: unknown {unknown}; expected some of {', '.join(CELLS)}")
    if not cells:
        raise UserError(f"--cells is empty; expected some of {', '.join(CELLS)}")
    if args.length < 1 or args.hidden_size < 1:
        raise UserError(f"--length and --hidden-size must be >= 1, got {args.length} and "
                        f"{args.hidden_size}")
    if not 0 < args.scale < float("inf"):
        raise UserError(f"--scale must be a positive number, got {args.scale}")
    run_gradients(cells, args.length, args.hidden_size, args.scale)
    return 0
