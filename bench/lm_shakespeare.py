"""Tiny-shakespeare char-LM benchmark: train for a time budget, record the validation loss.

Runs the `shakespeare` preset of `rnnkit train lm` (2x512 LSTM, dropout 0.25, AdamW 3e-3,
cosine decay over the time budget, B=32, T=128; first 90% train, last 10% valid) and writes
docs/results/lm_shakespeare_<minutes>min.{json,md} with the exact command, the loss curve and
a sample. The target: valid loss <= 1.45 nats/char within 30 minutes on 2 CPU cores.

    python bench/lm_shakespeare.py --minutes 30 --out runs/shakespeare30
    python bench/lm_shakespeare.py --minutes 60 --out runs/shakespeare60
    python bench/lm_shakespeare.py --minutes 4 -- --backend torch   # extra flags after --
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from rnnkit.train.config import config_from_dict
from rnnkit.train.lm import PRESETS, LMConfig
from rnnkit.train.lm import main as train_main

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _parse_extra(extra: list[str]) -> dict:
    """Turn `--hidden-size 256 --no-progress` style flags into LMConfig overrides."""
    from rnnkit.cli.train_lm import add_task_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="task")
    add_task_parser(sub)
    ns = parser.parse_args(["lm", *extra])
    names = set(LMConfig.__dataclass_fields__)
    return {k: v for k, v in vars(ns).items() if k in names}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare input.txt")
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    p.add_argument("--out", default=None, help="run directory (default runs/shakespeare<M>)")
    p.add_argument("--results", default=str(REPO / "docs" / "results"),
                   help="where the JSON and Markdown results go")
    p.add_argument("extra", nargs="*", help="more `rnnkit train lm` flags, after --")
    args = p.parse_args(argv)
    if not Path(args.data).exists():
        print(f"lm_shakespeare: data file {args.data!r} not found; pass --data", file=sys.stderr)
        return 2
    minutes = args.minutes
    tag = f"{minutes:g}min"
    out = args.out or f"runs/shakespeare{tag}"
    overrides = {**PRESETS["shakespeare"], "data": args.data, "out": out,
                 "time_budget": minutes, **_parse_extra(args.extra)}
    cfg = config_from_dict(LMConfig, overrides)
    command = ("rnnkit train lm --preset shakespeare "
               f"--data {shlex.quote(os.path.relpath(args.data))} --out {shlex.quote(out)} "
               f"--time-budget {minutes:g} " + " ".join(shlex.quote(e) for e in args.extra))
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    summary = train_main(cfg)
    load_after = os.getloadavg()[0]
    rows = _rows(Path(out) / "metrics.jsonl")
    valid = [r for r in rows if r["split"] == "valid"]
    train = [r for r in rows if r["split"] == "train"]
    result = {
        "benchmark": "tinyshakespeare char LM", "command": command.strip(), "started": started,
        "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "time_budget_min": minutes,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "steps": summary["step"], "epochs": summary["epoch"],
        "elapsed_s": summary["elapsed_s"], "best_valid_loss": summary["best_val_loss"],
        "last_valid_loss": summary["last_val_loss"],
        "median_train_chars_per_s": sorted(r["tokens_per_s"] for r in train)[len(train) // 2],
        "parameters": summary["parameters"], "config": overrides,
        "curve": [{"step": r["step"], "elapsed_s": r["elapsed_s"], "valid_loss": r["loss"]}
                  for r in valid],
        "sample": summary.get("sample", ""),
    }
    res_dir = Path(args.results)
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / f"lm_shakespeare_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (res_dir / f"lm_shakespeare_{tag}.md").write_text(_markdown(result))
    print(f"best valid loss {result['best_valid_loss']:.4f} nats/char after "
          f"{result['elapsed_s']:.0f}s; results in {res_dir}")
    return 0


def _markdown(r: dict) -> str:
    lines = [f"# tinyshakespeare char LM, {r['time_budget_min']:g}-minute budget", "",
             f"- command: `{r['command']}`", f"- started: {r['started']}",
             f"- device: {r['device']}, torch {r['torch']}; 1-minute load average "
             f"{r['load_average_1min'][0]} before, {r['load_average_1min'][1]} after "
             "(other jobs on the machine count here)",
             f"- model: {r['parameters']:,} parameters; steps {r['steps']}, "
             f"epochs {r['epochs']}, elapsed {r['elapsed_s']:.0f}s",
             f"- median training throughput: {r['median_train_chars_per_s']:,.0f} chars/s",
             f"- **best validation loss: {r['best_valid_loss']:.4f} nats/char** "
             f"(last {r['last_valid_loss']:.4f})", "",
             "| step | elapsed (s) | valid loss (nats/char) |", "|---:|---:|---:|"]
    lines += [f"| {c['step']} | {c['elapsed_s']:.0f} | {c['valid_loss']:.4f} |"
              for c in r["curve"]]
    lines += ["", "Sample (temperature 0.8):", "", "```", r["sample"], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
