"""`rnnkit lab gradients` (watch gradients vanish or explode through time, cell by cell), the
long-memory tasks `rnnkit lab adding|copy|temporal-order|pixels`, `rnnkit lab compare`, and
ListOps (`rnnkit lab listops`, `listops-table`, in rnnkit.cli.lab_listops)."""

from __future__ import annotations

import argparse
import importlib

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
    _add_compare_command(sub)
    importlib.import_module("rnnkit.cli.lab_listops").add_commands(sub)
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


# LabConfig fields `rnnkit lab compare` takes in its own way (the task is positional, the
# cells and clipping are lists, every run goes to OUT/<cell>)
_COMPARE_OWN = ("task", "cell", "clip_norm", "out")


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
    """`rnnkit lab compare TASK --cells a,b --out DIR [--clip C[,C...] | --no-clip]` and
    every other LabConfig field as a flag."""
    import dataclasses

    from rnnkit.lab.experiments import CELLS as TASK_CELLS
    from rnnkit.lab.experiments import TASKS, TINY, LabConfig
    from rnnkit.train.config import add_config_flags

    p = sub.add_parser(
        "compare", help="train several cells on one task, one table and one plot",
        description="Train several cells one after the other on the same task with the same "
                    "budget and seed (each run in OUT/<cell>), then write OUT/results.md "
                    "(final validation loss, the best checkpoint's test loss and error rate, "
                    "baseline, solved?, steps, time) and OUT/losses.png "
                    "(every validation loss curve against the task's baseline). Settings "
                    "resolve as: defaults, then --preset, then --config, then flags.")
    p.add_argument("task", choices=TASKS, help="the task")
    p.add_argument("--cells", default=",".join(TASK_CELLS),
                   help=f"comma-separated, from: {', '.join(TASK_CELLS)} (default: all)")
    p.add_argument("--out", default="runs/lab-compare", help="output folder (default: "
                   "runs/lab-compare)")
    clip = p.add_mutually_exclusive_group()
    clip.add_argument("--clip", default=None, metavar="C[,C...]",
                      help="clip the global gradient norm to C (0: off; default 1.0); several "
                           "values run every cell once per value, e.g. --clip 1,0 for clipping "
                           "on and off in one plot")
    clip.add_argument("--no-clip", dest="clip", action="store_const", const="0",
                      help="no gradient clipping (same as --clip 0)")
    p.add_argument("--preset", choices=["tiny"], default=None, help="a named set of settings")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="JSON file of settings (a run's config.json works)")
    kept = [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
            for f in dataclasses.fields(LabConfig) if f.name not in _COMPARE_OWN]
    add_config_flags(p, dataclasses.make_dataclass("CompareFlags", kept))
    p.set_defaults(func=_compare, presets={"tiny": TINY})


def _split(text: str, what: str) -> list[str]:
    from rnnkit.cli import UserError

    items = [part.strip() for part in text.split(",")]
    if not items or any(not part for part in items):
        raise UserError(f"{what}: expected a comma-separated list, got {text!r}")
    return items


def _compare(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.lab.compare import compare
    from rnnkit.lab.experiments import LabConfig
    from rnnkit.train.config import resolve_config

    cells = _split(args.cells, "--cells")
    clips = None
    if args.clip is not None:
        try:
            clips = [float(c) for c in _split(args.clip, "--clip")]
        except ValueError as err:
            raise UserError(f"--clip: expected numbers >= 0 (0: off), got {args.clip!r}") \
                from err
    # positional task and --out are LabConfig fields too; compare sets each run's cell, clip
    # and folder itself (a --config file's own cell and folder are overridden)
    cfg = resolve_config(LabConfig, args, args.presets)
    compare(cfg, cells, args.out, clips)
    return 0


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
