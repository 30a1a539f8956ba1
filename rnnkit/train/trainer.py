"""Trainer: the optimisation loop every model shares (clipping, TBPTT, eval, checkpoints)."""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, config_to_dict
from rnnkit.train.ddp import Replicas
from rnnkit.train.integrity import CheckpointError
from rnnkit.train.metrics import MetricsLog, StepWindow, plot_losses
from rnnkit.train.optim import (
    build_optimizer,
    clip_gradients,
    lr_factor,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
)

__all__ = ["Trainer", "BatchSource", "LossFn", "EvalFn", "detach_state",
           "TrainingDivergedError", "NonFiniteLossWarning"]


class TrainingDivergedError(ValueError):
    """max_bad_steps steps in a row had a non-finite loss or gradient norm."""


class NonFiniteLossWarning(RuntimeWarning):
    """A step was skipped because its loss or gradient norm was not finite."""

# loss_fn(model, batch, state) -> (mean loss, final recurrent state or None, tokens in batch)
LossFn = Callable[[nn.Module, Any, Any], tuple[Tensor, Any, int]]
# evaluate_fn(model) -> {"loss": ..., and e.g. "bpc" or "accuracy"}; run under eval() + no_grad
EvalFn = Callable[[nn.Module], dict[str, float]]


class BatchSource(Protocol):
    """Training batches addressed by index, so a data position is `(epoch, index)`."""

    def __len__(self) -> int: ...

    def batch(self, index: int) -> Any: ...


def detach_state(state: Any) -> Any:
    """Cut the graph behind a recurrent state (None, a tensor, or a tuple of tensors)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


class Trainer:
    """Optimises `model` on `batches` with `loss_fn`, evaluating with `evaluate_fn`.

    Per step: learning rate from the schedule, `loss_fn` on the next batch (teacher forcing is
    the loss function's business), backward, clipping by norm and/or value, optimiser step.
    With `carry_state` the final recurrent state of one batch (detached) starts the next,
    which is truncated BPTT over contiguous streams; it is reset at each epoch start.
    Every `eval_every` steps and at the end: evaluate, log a row per split to metrics.jsonl,
    save `run_dir/last` and, when the validation loss improved, `run_dir/best`.
    A step whose loss or gradient norm is not finite is skipped (see `train_step`); Ctrl-C
    stops at a step boundary (see `fit`); `resume` checks that the saved run matches.

    Args:
        model: the module to train.
        config: a TrainConfig (or an application config that inherits from it).
        batches: the training BatchSource.
        loss_fn: see `LossFn`.
        evaluate_fn: see `EvalFn`.
        run_dir: where checkpoints, metrics.jsonl and loss.png go.
        checkpoint_config: JSON-ready dict stored as each checkpoint's config.json (model
            class, arguments, vocabulary, run config).
        derived: extra metrics computed from a mean loss, e.g. bits per character.
        log: where progress lines go (default: printed above the progress bar).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, batches: BatchSource,
                 loss_fn: LossFn, evaluate_fn: EvalFn, run_dir: str | Path,
                 checkpoint_config: dict[str, Any],
                 derived: Callable[[float], dict[str, float]] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if len(batches) < 1:
            raise ValueError("batches is empty: the training data is too small for one batch")
        self.model, self.cfg, self.batches = model, config, batches
        self.loss_fn, self.evaluate_fn = loss_fn, evaluate_fn
        self.run_dir = Path(run_dir)
        self.checkpoint_config = checkpoint_config
        self.derived = derived or (lambda loss: {})
        self.log = log or tqdm.write
        self.optimizer = build_optimizer(model, config)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.step = self.epoch = self.index = 0
        self.best_loss = math.inf
        self.bad_evals = 0
        self.elapsed = 0.0  # seconds of training (and evaluation) across resumes
        self.carry: Any = None
        self.bad_steps = 0  # non-finite steps in a row
        # Extra random generators the loss function draws from (saved with the checkpoint).
        self.generators: dict[str, torch.Generator] = {}
        # Test hook: hook(phase, step) at "loss", "backward", "update" and "step" of each step.
        self.hook: Callable[[str, int], None] | None = None
        self.phase = "idle"
        self._stop_requested = False
        self._rng_before: tuple = ()
        self.history: list[dict[str, float]] = []  # this process's steps: step, loss, lr
        self._window = StepWindow()
        self.replicas = Replicas.join(self) if distributed.is_active() else None  # torchrun

    # ---- schedule and stopping -------------------------------------------------------------
    def progress(self) -> float:
        """Fraction of the run done: the furthest along of the step, epoch and time limits."""
        c = self.cfg
        parts = []
        if c.max_steps:
            parts.append(self.step / c.max_steps)
        if c.max_epochs:
            parts.append(self.step / (c.max_epochs * len(self.batches)))
        if c.time_budget:
            parts.append(self.elapsed / (c.time_budget * 60.0))
        return max(parts)

    def _stop_reason(self) -> str | None:
        c = self.cfg
        if self.replicas is not None:  # every process stops at the same step
            self.replicas.agree()
        if c.max_steps and self.step >= c.max_steps:
            return "max_steps"
        if c.max_epochs and self.epoch >= c.max_epochs:
            return "max_epochs"
        if c.time_budget and self.elapsed >= c.time_budget * 60.0:
            return "time_budget"
        if c.patience and self.bad_evals >= c.patience:
            return "early_stopping"
        return None

    # ---- one step --------------------------------------------------------------------------
    def _hook_at(self, phase: str) -> None:
        if self.hook is not None:
            self.hook(phase, self.step)

    def _rng_snapshot(self) -> tuple:
        return (torch.get_rng_state(), random.getstate(),
                {k: g.get_state() for k, g in self.generators.items()})

    def _rng_restore(self, snap: tuple) -> None:
        torch.set_rng_state(snap[0])
        random.setstate(snap[1])
        for k, g in self.generators.items():
            g.set_state(snap[2][k])

    def train_step(self) -> float | None:
        """One optimiser step on the next batch; returns the batch's mean loss, or None when
        the step was skipped because its loss or gradient norm was not finite.

        `self.phase` says how far the step got: "forward" (nothing but the RNGs changed yet,
        so an interrupted step can be discarded), "update" (the optimiser is changing the
        weights: an interruption here cannot be undone), "idle" (between steps).
        """
        c = self.cfg
        self._rng_before = self._rng_snapshot()
        self.phase = "forward"
        if self.index == 0:
            self.carry = None
            if hasattr(self.batches, "set_epoch"):
                self.batches.set_epoch(self.epoch)
        lr = c.lr * lr_factor(c, self.step, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        state = self.carry if c.carry_state else None
        forward = self.replicas.loss if self.replicas is not None else self.loss_fn
        loss, state, n_tokens = forward(self.model, self.batches.batch(self.index), state)
        self._hook_at("loss")
        if not torch.isfinite(loss):
            return self._skip_step(f"the loss is {loss.item()}", lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._hook_at("backward")
        norm_clipped, value_frac, norm = clip_gradients(self.model, c)
        if not math.isfinite(norm):
            return self._skip_step(f"the gradient norm is {norm}", lr)
        self.phase = "update"
        self.optimizer.step()
        self._hook_at("update")
        self._window.add_clip(norm_clipped, value_frac)
        self.carry = detach_state(state) if c.carry_state else None
        self.bad_steps = 0
        self.step += 1
        self._advance()
        value = loss.item()
        self._window.add_loss(value, n_tokens)
        self.history.append({"step": self.step, "loss": value, "lr": lr})
        self.phase = "idle"
        self._hook_at("step")
        return value

    def _advance(self) -> None:
        self.index += 1
        if self.index == len(self.batches):
            self.index, self.epoch = 0, self.epoch + 1

    def _skip_step(self, what: str, lr: float) -> None:
        """Drop the gradients, skip the batch, warn; stop after max_bad_steps in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps += 1
        self.carry = None
        where = f"step {self.step + 1} (epoch {self.epoch}, batch {self.index})"
        self._advance()
        self.phase = "idle"
        if self.bad_steps >= self.cfg.max_bad_steps:
            raise TrainingDivergedError(
                f"{what} at {where}: {self.bad_steps} steps in a row had a non-finite loss or "
                f"gradient, stopping (max_bad_steps={self.cfg.max_bad_steps}); lower lr (now "
                f"{lr:.3g}) or set clip_norm; checkpoints so far are in {self.run_dir}")
        warnings.warn(f"{what} at {where}: skipped the update ({self.bad_steps} in a row; "
                      f"training stops at max_bad_steps={self.cfg.max_bad_steps})",
                      NonFiniteLossWarning, stacklevel=3)
        return None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """First Ctrl-C: finish the current step, save `last`, stop. Second: stop now."""
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        # os.write, not print: a handler that prints while the interrupted code is printing
        # raises "reentrant call" on the buffered stream.
        os.write(2, b"\ninterrupted: finishing the current step, then saving last/ "
                    b"(Ctrl-C again to stop at once)\n")

    # ---- the loop --------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None = None) -> dict[str, Any]:
        """Train until a stopping rule fires (or `stop_at_step`, which saves `last` and returns
        as an interruption would); returns a summary.

        Ctrl-C (SIGINT, in the main thread) lets the current step finish, saves `last` at that
        step boundary and returns with stop_reason "interrupted"; a KeyboardInterrupt raised
        inside a step (a second Ctrl-C) discards the half-done step (the RNGs are put back)
        unless the optimiser was already updating the weights, in which case nothing is saved
        and the previous checkpoint stands.
        """
        c = self.cfg
        start_elapsed, t0 = self.elapsed, time.perf_counter()
        total = c.max_steps or (c.max_epochs * len(self.batches) if c.max_epochs else None)
        by_time = total is None  # a time budget alone: the bar counts seconds of the budget
        bar = tqdm(total=round(c.time_budget * 60) if by_time else total,
                   initial=round(self.elapsed) if by_time else self.step,
                   disable=not c.progress or distributed.rank() > 0, dynamic_ncols=True,
                   unit="s" if by_time else "step", leave=False)
        reason = None
        self._stop_requested = False
        if self.replicas is not None:
            self.replicas.start(self.generators)
        installed, previous = False, None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
            installed = True
        try:
            while (reason := self._stop_reason()) is None:
                if self._stop_requested:
                    reason = "interrupted"
                    break
                if stop_at_step is not None and self.step >= stop_at_step:
                    reason = "stopped"
                    break
                t_step = time.perf_counter()
                loss = self.train_step()
                self._window.train_seconds += time.perf_counter() - t_step
                self.elapsed = start_elapsed + time.perf_counter() - t0
                if loss is None:
                    continue
                bar.set_postfix_str(f"step {self.step} | loss {loss:.3f} | "
                                    f"{self._window.rate():,.0f} tok/s", refresh=False)
                bar.update(min(round(self.elapsed), bar.total) - bar.n if by_time else 1)
                if self.step % c.eval_every == 0:
                    self._evaluate_and_save()
                    self.elapsed = start_elapsed + time.perf_counter() - t0
        except KeyboardInterrupt:
            reason = "interrupted"
            if self.phase == "forward":
                self._rng_restore(self._rng_before)  # discard the half-done step
                self.phase = "idle"
        except RuntimeError as err:  # a collective failed: another process is lost
            distributed.raise_if_lost(err, f"after step {self.step}", self.run_dir)
            raise
        finally:
            if installed:
                signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
            bar.close()
        if reason == "interrupted" and self.phase == "update":
            self.log(f"interrupted while the optimiser was updating the weights: not saving; "
                     f"resume continues from the last checkpoint in {self.run_dir}")
        elif reason in ("stopped", "interrupted"):
            self.save(self.run_dir / "last")
            if reason == "interrupted":
                self.log(f"saved {self.run_dir / 'last'} at step {self.step}; continue with "
                         f"--resume")
        elif self._window.steps:
            self._evaluate_and_save()
            self.elapsed = start_elapsed + time.perf_counter() - t0
        plot_losses(self.metrics.path, self.run_dir / "loss.png")
        return {"step": self.step, "epoch": self.epoch, "stop_reason": reason,
                "best_val_loss": self.best_loss, "elapsed_s": round(self.elapsed, 2)}

    def _evaluate_and_save(self) -> None:
        w, self._window = self._window, StepWindow()
        self.model.eval()
        with torch.no_grad():
            val = distributed.mean_over_ranks(dict(self.evaluate_fn(self.model)))
        train_loss = w.mean_loss()
        common = {"step": self.step, "epoch": self.epoch,
                  "elapsed_s": round(self.elapsed, 2), "tokens_per_s": round(w.rate(), 1)}
        self.metrics.write({**common, "split": "train", "loss": train_loss,
                            **self.derived(train_loss), "lr": self.history[-1]["lr"],
                            "clip_norm_fraction": w.norm_clip_fraction(),
                            "clip_value_fraction": w.value_clip_fraction()})
        self.metrics.write({**common, "split": "valid", **{"loss": val["loss"]},
                            **{k: v for k, v in val.items() if k != "loss"}})
        improved = val["loss"] < self.best_loss
        if improved:
            self.best_loss, self.bad_evals = val["loss"], 0
        else:
            self.bad_evals += 1
        extras = "".join(f" ({v:.3f} {k})" for k, v in val.items() if k != "loss")
        self.log(f"step {self.step:>6} | train {train_loss:.4f} | valid {val['loss']:.4f}{extras}"
                 f" | {w.rate():,.0f} tok/s | {self.elapsed:,.0f}s" + (" *" if improved else ""))
        self.save(self.run_dir / "last", val_loss=val["loss"])
        if improved:
            self.save(self.run_dir / "best", val_loss=val["loss"])

    # ---- checkpoints -----------------------------------------------------------------------
    def save(self, path: str | Path, val_loss: float | None = None) -> Path:
        """Write a full checkpoint (model + trainer state) to `path`; with several processes,
        every process calls it (their carried states and random streams are gathered)."""
        tensors, optim_meta = optimizer_state_to_flat(self.optimizer)
        carry_tensors, carry_layout = ckpt.state_to_flat(distributed.gather_rows(self.carry),
                                                         "carry")
        rng_tensors, rng_meta = ckpt.rng_state()
        rng_tensors.update({f"rng.gen.{k}": g.get_state() for k, g in self.generators.items()})
        ranks = self.replicas.rng_to_flat() if self.replicas is not None else ({}, None)
        if not distributed.is_main():
            return Path(path)
        meta = {"step": self.step, "epoch": self.epoch, "index": self.index,
                "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
                "bad_evals": self.bad_evals, "bad_steps": self.bad_steps,
                "elapsed_s": self.elapsed, "carry": carry_layout, "rng": rng_meta,
                "rng_ranks": ranks[1], "optimizer": optim_meta,
                "train_config": config_to_dict(self.cfg)}
        config = {**self.checkpoint_config, "step": self.step, "val_loss": val_loss}
        return ckpt.save_checkpoint(path, self.model, config,
                                    {**tensors, **carry_tensors, **rng_tensors, **ranks[0]}, meta)

    def resume(self, path: str | Path | None = None) -> bool:
        """Restore model, optimiser, RNGs, step and data position from the newest checkpoint
        (default: of `run_dir`, see `find_checkpoint(prefer="last")`). Returns False when there
        is nothing to resume from; with several processes, rank 0 reads it for all of them.

        Raises:
            ResumeMismatchError: the checkpoint's task, data fingerprint, vocabulary or model
                arguments differ from this run's, naming each difference.
            CheckpointError: the checkpoint fails its checks.
        """
        found = distributed.from_main(lambda: ckpt.read_for_resume(
            path, self.run_dir, self.model, self.checkpoint_config))
        if found is None:
            self.metrics.truncate_after(0)
            return False
        where, weights, tensors, meta = found
        try:
            optimizer_state_from_flat(self.optimizer, tensors, meta["optimizer"])
            self.carry = ckpt.state_from_flat(tensors, meta["carry"], "carry")
            ckpt.set_rng_state(tensors, meta["rng"])
            for k, g in self.generators.items():
                g.set_state(tensors[f"rng.gen.{k}"])
            self.step, self.epoch, self.index = meta["step"], meta["epoch"], meta["index"]
            self.best_loss = math.inf if meta["best_loss"] is None else meta["best_loss"]
            self.bad_evals, self.elapsed = meta["bad_evals"], meta["elapsed_s"]
            self.bad_steps = meta.get("bad_steps", 0)
            note = self.replicas.restore(weights, tensors, meta) if self.replicas else None
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {str(where)!r} has unusable trainer state "
                                  f"({type(err).__name__}: {err})") from err
        self.metrics.truncate_after(self.step)
        self.log(f"resumed from {where} at step {self.step}" + (f"; {note}" if note else ""))
        return True
