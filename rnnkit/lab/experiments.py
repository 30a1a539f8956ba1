"""The classic long-memory experiments as trainable runs: LabConfig, `main(config)` for the
adding, copy, temporal-order and pixel-by-pixel tasks, with the Trainer's checkpoints, metrics
and plots, and the task's no-memory baseline beside the loss."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit as rk
from rnnkit.lab import tasks
from rnnkit.train.checkpoint import find_checkpoint, load_model_weights
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["LabConfig", "TASKS", "CELLS", "TINY", "baseline", "solved_below", "is_solved",
           "build_model", "main"]

TASKS = ("adding", "copy", "temporal-order", "pixels")
CELLS = ("rnn", "irnn", "lstm", "gru", "chrono-lstm")
_COPY_SYMBOLS, _COPY_LENGTH = 8, 10  # Arjovsky et al.: 10 symbols from 8, then a delay T


@dataclass
class LabConfig(TrainConfig):
    """One long-memory experiment: a task at delay T, a cell, the Trainer's settings."""

    task: str = option("adding", "the task", TASKS)
    T: int = option(200, "sequence length (adding, temporal order) or delay (copy); the "
                    "pixel task is always 64 steps", low=2)
    cell: str = option("lstm", "recurrent cell: tanh RNN, identity-initialised ReLU RNN (Le et "
                       "al. 2015), LSTM with forget bias 1, GRU, chrono-initialised LSTM "
                       "(Tallec & Ollivier 2018)", CELLS)
    hidden_size: int = option(128, "hidden size H", low=1)
    batch_size: int = option(50, "sequences per step (fresh ones every step)", low=1)
    valid_size: int = option(1000, "held-out sequences for each evaluation", low=1)
    test_size: int = option(10_000, "fresh sequences of the final test of the best checkpoint "
                            "(Hochreiter & Schmidhuber count temporal order solved below 1% "
                            "errors on 10,000); the pixel task tests on its held-out digits",
                            low=1)
    out: str = option("runs/lab", "run directory")
    optimizer: str = option("rmsprop", "optimiser", ("adam", "adamw", "rmsprop", "sgd"))
    lr: float = option(1e-3, "peak learning rate")
    schedule: str = option("constant", "learning-rate schedule",
                           ("cosine", "linear", "constant"))
    clip_norm: float = option(1.0, "clip the global gradient norm to this (0: off)")
    max_steps: int = option(2000, "stop after this many optimiser steps (0: no step limit)")
    eval_every: int = option(100, "evaluate and checkpoint every N steps", low=1)
    carry_state: bool = option(False, "carry the recurrent state between batches (the tasks' "
                               "sequences are independent: off)")
    diagnostics_every: int = option(0, "every N steps record ||dL/dh_t|| per step, gradient "
                                    "share, gate saturation and spectral radius on a fixed "
                                    "probe batch to diagnostics.jsonl, and draw gradients.png "
                                    "and gradient_profile.png at the end (0: off)")


TINY: dict[str, Any] = dict(T=12, hidden_size=8, batch_size=8, valid_size=16, test_size=40,
                            max_steps=6, eval_every=3, progress=False)


def baseline(task: str, T: int) -> float:
    """The loss of the best memoryless predictor: adding 1/6 (always answer 1; Arjovsky et al.
    quote 0.167), copy 10 ln 8 / (T + 20), temporal order and digits ln of the class count."""
    if task == "adding":
        return 1.0 / 6.0
    if task == "copy":
        return _COPY_LENGTH * math.log(_COPY_SYMBOLS) / (T + 2 * _COPY_LENGTH)
    return math.log(4 if task == "temporal-order" else 10)


def solved_below(task: str, T: int) -> float | None:
    """The validation loss under which a run counts as solving the task: adding MSE 0.01 (Le
    et al. 2015, Arjovsky et al. 2016), copy 1% of the baseline; None where success is an
    error rate instead (temporal order, pixels: see `is_solved`)."""
    if task == "adding":
        return 0.01
    if task == "copy":
        return 0.01 * baseline(task, T)
    return None


def is_solved(task: str, T: int, loss: float, error_rate: float) -> bool:
    """Whether a test result solves the task: `solved_below` for adding and copy;
    under 1% misclassified for temporal order (Hochreiter & Schmidhuber 1997) and, our own
    threshold, under 5% for the 8x8 digits."""
    limit = solved_below(task, T)
    if limit is not None:
        return loss < limit
    return error_rate < (0.01 if task == "temporal-order" else 0.05)


class _TaskModel(nn.Module):
    """Inputs (embedded tokens or raw values) -> one recurrent layer -> a linear read-out of
    the last valid step (regression, classification) or of every step (copy)."""

    def __init__(self, cfg: LabConfig) -> None:
        super().__init__()
        n_in, n_out = {"adding": (2, 1), "copy": (_COPY_SYMBOLS + 2, _COPY_SYMBOLS + 1),
                       "temporal-order": (8, 4), "pixels": (1, 10)}[cfg.task]
        self.embed = nn.Embedding(n_in, n_in) if cfg.task in ("copy", "temporal-order") \
            else None
        if self.embed is not None:
            with torch.no_grad():
                self.embed.weight.copy_(torch.eye(n_in))  # one-hot inputs, as in the papers
            self.embed.weight.requires_grad_(False)
        self.rnn = build_model(cfg.cell, n_in, cfg.hidden_size, cfg.T)
        self.head = nn.Linear(cfg.hidden_size, n_out)
        self.per_step = cfg.task == "copy"

    def inputs(self, x: Tensor) -> Tensor:
        """What the recurrent layer receives: (T, B, I) float."""
        return self.embed(x) if self.embed is not None else x

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h, _ = self.rnn(self.inputs(x), lengths=lengths)
        return self.readout(h, lengths)

    def readout(self, h: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The head on the layer's outputs h (T, B, H)."""
        if self.per_step:
            return self.head(h)  # (T, B, V)
        if lengths is None:
            return self.head(h[-1])  # (B, n_out)
        return self.head(h[lengths - 1, torch.arange(h.shape[1])])


def build_model(cell: str, input_size: int, hidden_size: int, T: int) -> nn.Module:
    """The recurrent layer of `cell` with the initialisation its paper prescribes."""
    if cell == "rnn":
        return rk.RNN(input_size, hidden_size)
    if cell == "irnn":
        return rk.IRNN(input_size, hidden_size)
    if cell == "lstm":
        return rk.LSTM(input_size, hidden_size, forget_bias=1.0)
    if cell == "chrono-lstm":
        return rk.LSTM(input_size, hidden_size, chrono=T)
    if cell == "gru":
        return rk.GRU(input_size, hidden_size)
    raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")


def _draw(cfg: LabConfig, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None]:
    """n fresh sequences of the task: inputs, targets, lengths (or None)."""
    if cfg.task == "adding":
        x, y = tasks.adding_problem(n, cfg.T, gen)
        return x, y, None
    if cfg.task == "copy":
        x, y = tasks.copy_problem(n, cfg.T, _COPY_SYMBOLS, _COPY_LENGTH, gen)
        return x, y, None
    x, y, lengths = tasks.temporal_order(n, cfg.T, gen)
    return x, y, lengths


def _loss(model: _TaskModel, task: str, batch: tuple) -> tuple[Tensor, Tensor]:
    """The task's loss (MSE for adding, cross-entropy otherwise) and its error rate."""
    x, y, lengths = batch
    return _criterion(task, model(x, lengths), y)


_TEST_CHUNK = 1000  # sequences per forward pass of the test (bounds its memory)


@torch.no_grad()
def _test(cfg: LabConfig, model: _TaskModel) -> dict[str, float]:
    """Loss and error rate on `cfg.test_size` fresh sequences (drawn from a seed that neither
    training nor validation uses), or on the pixel task's held-out digits; chunked, and
    weighted so the result equals one pass over all of them."""
    if cfg.task == "pixels":
        x, y = tasks.pixel_digits("test")
        lengths = None
    else:
        x, y, lengths = _draw(cfg, cfg.test_size, torch.Generator().manual_seed(
            cfg.seed + 1_000_000_007))
    n_test = y.shape[-1]
    chunks = [(x[:, i:i + _TEST_CHUNK], y[..., i:i + _TEST_CHUNK],
               None if lengths is None else lengths[i:i + _TEST_CHUNK])
              for i in range(0, n_test, _TEST_CHUNK)]
    loss = err = 0.0
    n_all = 0
    for batch in chunks:
        n = batch[1].shape[-1]
        chunk_loss, chunk_err = _loss(model, cfg.task, batch)
        loss, err, n_all = loss + chunk_loss.item() * n, err + chunk_err.item() * n, n_all + n
    return {"loss": loss / n_all, "error_rate": err / n_all, "size": n_all}


def _criterion(task: str, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if task == "adding":
        pred = out.squeeze(-1)
        return F.mse_loss(pred, y), ((pred - y).abs() > 0.04).float().mean()
    if task == "copy":
        return F.cross_entropy(out.flatten(0, 1), y.flatten()), \
            (out.argmax(-1) != y)[-_COPY_LENGTH:].float().mean()
    return F.cross_entropy(out, y), (out.argmax(-1) != y).float().mean()


class _Batches:
    """Fresh sequences every step, drawn from (seed, index): a resumed run sees the same ones.
    The pixel task cycles through its fixed training images instead."""

    def __init__(self, cfg: LabConfig, pixels: tuple[Tensor, Tensor] | None) -> None:
        self.cfg, self.pixels = cfg, pixels

    def __len__(self) -> int:
        if self.pixels is None:
            return 10**9
        return max(1, self.pixels[1].shape[0] // self.cfg.batch_size)

    def batch(self, index: int) -> tuple:
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + index)
        if self.pixels is None:
            return _draw(self.cfg, self.cfg.batch_size, gen)
        x, y = self.pixels
        pick = torch.randint(0, y.shape[0], (self.cfg.batch_size,), generator=gen)
        return x[:, pick], y[pick], None


def main(config: LabConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train `config.cell` on `config.task`; returns a summary with the baseline and the final
    validation loss and error rate."""
    with start_run(config, log) as out:
        return _train(config, out, log)


def _train(cfg: LabConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    pixels = tasks.pixel_digits("train") if cfg.task == "pixels" else None
    if pixels is None:
        valid = _draw(cfg, cfg.valid_size, torch.Generator().manual_seed(cfg.seed + 7))
    else:
        x, y = tasks.pixel_digits("test")
        valid = (x, y, None)
    model = _TaskModel(cfg)
    base = baseline(cfg.task, 64 if cfg.task == "pixels" else cfg.T)
    log(f"task {cfg.task}, T={cfg.T}, cell {cfg.cell}: no-memory baseline loss {base:.4f}")

    def evaluate(m: nn.Module) -> dict[str, float]:
        loss, err = _loss(m, cfg.task, valid)
        return {"loss": loss.item(), "error_rate": err.item(), "baseline": base}

    meta = {"model_class": "LabTaskModel", "run_config": config_to_dict(cfg),
            "data_fingerprint": fingerprint(cfg.task, cfg.T, cfg.seed, cfg.batch_size),
            "model_args": {"task": cfg.task, "T": cfg.T, "cell": cfg.cell,
                           "hidden_size": cfg.hidden_size}}
    trainer = Trainer(model, cfg, _Batches(cfg, pixels),
                      lambda m, b, s: (_loss(m, cfg.task, b)[0], None, b[1].numel()),
                      evaluate, out, meta, log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    recorder = _recorder(cfg, model, valid, out) if cfg.diagnostics_every else None
    if recorder is not None:
        recorder.attach(trainer)
    summary = trainer.fit()
    if recorder is not None:
        pngs = recorder.plot(f"{cfg.cell}, {cfg.task} T={cfg.T}")
        log("gradient diagnostics: " + ", ".join(str(p) for p in pngs))
    model.eval()
    with torch.no_grad():
        final = evaluate(model)
    tested = "last"
    if (out / "best").is_dir():  # the checkpoint the validation loss chose
        load_model_weights(find_checkpoint(out, "best"), model)
        tested = "best"
    test = _test(cfg, model)
    summary.update(task=cfg.task, T=cfg.T, cell=cfg.cell, baseline=base,
                   final_valid_loss=final["loss"], final_error_rate=final["error_rate"],
                   test_loss=test["loss"], test_error_rate=test["error_rate"],
                   test_size=test["size"], test_checkpoint=tested,
                   solved=is_solved(cfg.task, cfg.T, test["loss"], test["error_rate"]))
    log(f"final valid loss {final['loss']:.4f} (baseline {base:.4f}), error rate "
        f"{final['error_rate']:.3f}; {tested} checkpoint on {test['size']:,} test sequences: "
        f"loss {test['loss']:.4g}, error rate {test['error_rate']:.4f}"
        f"{' (solved)' if summary['solved'] else ''}; run in {out}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


_PROBE_SIZE = 32  # validation sequences the diagnostics are measured on


def _recorder(cfg: LabConfig, model: _TaskModel, valid: tuple, out: Path) -> Any:
    """A DiagnosticsRecorder on the first validation sequences, with the task's loss."""
    from rnnkit.lab.recorder import DiagnosticsRecorder

    x, y, lengths = valid
    n = min(_PROBE_SIZE, y.shape[-1])
    x, y = x[:, :n], y[..., :n]
    lengths = lengths[:n] if lengths is not None else None
    with torch.no_grad():
        inputs = model.inputs(x)

    def probe_loss(h: Tensor) -> Tensor:
        return _criterion(cfg.task, model.readout(h, lengths), y)[0]

    return DiagnosticsRecorder(model.rnn, inputs, probe_loss, cfg.diagnostics_every, out,
                               model=model)
