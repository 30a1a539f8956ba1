"""Training throughput of the LanguageModel: rnnkit layers vs torch.nn layers, same Trainer.

Both models get identical weights and the same batches; their Trainer steps are interleaved
in one process (round-robin blocks of steps) so that load from other processes hits both
alike. Prints a table of median chars/s and the ratio; writes JSON with --json.

    python bench/lm_throughput.py --hidden-size 512 --num-layers 2 --batch-size 32 \
        --seq-len 128 --rounds 7 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.data import StreamBatches
from rnnkit.models import LanguageModel
from rnnkit.train import TrainConfig, Trainer

__all__ = ["measure", "main"]


def _loss_fn(model, batch, state):
    x, y = batch
    loss, state = model.loss(x, y, state)
    return loss, state, x.numel()


def measure(args: argparse.Namespace) -> dict:
    """Median training chars/s per backend, measured interleaved."""
    torch.manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.batch_size * args.seq_len * 64 + 1,))
    batches = StreamBatches(ids, args.batch_size, args.seq_len)
    cfg = TrainConfig(max_steps=10**9, progress=False, lr=1e-3, clip_norm=1.0)
    ref = LanguageModel(args.vocab, args.embedding_size, args.hidden_size, args.num_layers,
                        args.cell, args.dropout, backend="torch")
    trainers = {}
    tmp = tempfile.mkdtemp(prefix="rnnkit-bench-")
    for backend in ("torch", "rnnkit"):
        model = LanguageModel(**{**ref.config(), "backend": backend})
        model.load_state_dict(ref.state_dict())
        trainers[backend] = Trainer(model, cfg, batches, _loss_fn, lambda m: {"loss": 0.0},
                                    Path(tmp) / backend, {}, log=lambda s: None)
    for t in trainers.values():  # warm-up: builds the engine, fills allocator caches
        for _ in range(2):
            t.train_step()
    times: dict[str, list[float]] = {b: [] for b in trainers}
    for r in range(args.rounds):
        order = list(trainers) if r % 2 == 0 else list(reversed(trainers))
        for backend in order:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainers[backend].train_step()
            times[backend].append((time.perf_counter() - t0) / args.steps)
    chars = args.batch_size * args.seq_len
    rate = {b: chars / statistics.median(v) for b, v in times.items()}
    return {"device": platform.processor() or platform.machine(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "shape": {k: getattr(args, k) for k in ("cell", "vocab", "embedding_size",
                                                     "hidden_size", "num_layers",
                                                     "batch_size", "seq_len", "dropout")},
            "rounds": args.rounds, "steps_per_round": args.steps,
            "chars_per_s": {b: round(v, 1) for b, v in rate.items()},
            "ratio_rnnkit_over_torch": round(rate["rnnkit"] / rate["torch"], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--embedding-size", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=512)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="training steps per timed block")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the result to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = measure(args)
    s = res["shape"]
    print(f"device: {res['device']}, {res['threads']} threads, torch {res['torch']}, "
          f"load average {res['load_average_1min']}")
    print(f"model: {s['num_layers']}x{s['hidden_size']} {s['cell'].upper()} LM, V={s['vocab']}, "
          f"E={s['embedding_size']}, B={s['batch_size']}, T={s['seq_len']}, "
          f"dropout={s['dropout']}; {res['rounds']} interleaved rounds x {res['steps_per_round']} "
          f"steps")
    print(f"{'backend':<10}{'median chars/s':>16}")
    for b, v in res["chars_per_s"].items():
        print(f"{b:<10}{v:>16,.0f}")
    print(f"ratio rnnkit / torch.nn: {res['ratio_rnnkit_over_torch']:.2f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
