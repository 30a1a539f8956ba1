"""Trainer: the optimisation loop every model shares (clipping, TBPTT, eval, checkpoints)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig, config_to_dict
from rnnkit.train.metrics import MetricsLog, plot_losses
from rnnkit.train.optim import (
    build_optimizer,
    lr_factor,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
)

__all__ = ["Trainer", "BatchSource", "LossFn", "EvalFn", "detach_state"]

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
        self.history: list[dict[str, float]] = []  # this process's steps: step, loss, lr
        self._window = _Window()

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
    def train_step(self) -> float:
        """One optimiser step on the next batch; returns the batch's mean loss."""
        c = self.cfg
        if self.index == 0:
            self.carry = None
            if hasattr(self.batches, "set_epoch"):
                self.batches.set_epoch(self.epoch)
        lr = c.lr * lr_factor(c, self.step, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        state = self.carry if c.carry_state else None
        loss, state, n_tokens = self.loss_fn(self.model, self.batches.batch(self.index), state)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.step}; lower lr "
                                     f"(now {lr:.3g}) or enable clip_norm")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._window.add_clip(*self._clip())
        self.optimizer.step()
        self.carry = detach_state(state) if c.carry_state else None
        self.step += 1
        self.index += 1
        if self.index == len(self.batches):
            self.index, self.epoch = 0, self.epoch + 1
        value = loss.item()
        self._window.add_loss(value, n_tokens)
        self.history.append({"step": self.step, "loss": value, "lr": lr})
        return value

    def _clip(self) -> tuple[bool, float]:
        """Clip gradients; returns (norm clipping happened, fraction of elements value-clipped)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        frac = 0.0
        if self.cfg.clip_value:
            v = self.cfg.clip_value
            total = sum(p.grad.numel() for p in params)
            clipped = sum(int((p.grad.abs() > v).sum()) for p in params)
            frac = clipped / max(total, 1)
            torch.nn.utils.clip_grad_value_(params, v)
        clipped_norm = False
        if self.cfg.clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_norm)
            clipped_norm = bool(norm > self.cfg.clip_norm)
        return clipped_norm, frac

    # ---- the loop --------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None = None) -> dict[str, Any]:
        """Train until a stopping rule fires (or `stop_at_step`, which saves `last` and returns
        as an interruption would); returns a summary."""
        c = self.cfg
        start_elapsed, t0 = self.elapsed, time.perf_counter()
        total = c.max_steps or (c.max_epochs * len(self.batches) if c.max_epochs else None)
        by_time = total is None  # a time budget alone: the bar counts seconds of the budget
        bar = tqdm(total=round(c.time_budget * 60) if by_time else total,
                   initial=round(self.elapsed) if by_time else self.step,
                   disable=not c.progress, unit="s" if by_time else "step",
                   dynamic_ncols=True, leave=False)
        reason = None
        try:
            while (reason := self._stop_reason()) is None:
                if stop_at_step is not None and self.step >= stop_at_step:
                    reason = "stopped"
                    break
                t_step = time.perf_counter()
                loss = self.train_step()
                self._window.train_seconds += time.perf_counter() - t_step
                self.elapsed = start_elapsed + time.perf_counter() - t0
                bar.set_postfix_str(f"step {self.step} | loss {loss:.3f} | "
                                    f"{self._window.rate():,.0f} tok/s", refresh=False)
                bar.update(min(round(self.elapsed), bar.total) - bar.n if by_time else 1)
                if self.step % c.eval_every == 0:
                    self._evaluate_and_save()
                    self.elapsed = start_elapsed + time.perf_counter() - t0
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            bar.close()
        if reason in ("stopped", "interrupted"):
            self.save(self.run_dir / "last")
        elif self._window.steps:
            self._evaluate_and_save()
            self.elapsed = start_elapsed + time.perf_counter() - t0
        plot_losses(self.metrics.path, self.run_dir / "loss.png")
        return {"step": self.step, "epoch": self.epoch, "stop_reason": reason,
                "best_val_loss": self.best_loss, "elapsed_s": round(self.elapsed, 2)}

    def _evaluate_and_save(self) -> None:
        w, self._window = self._window, _Window()
        self.model.eval()
        with torch.no_grad():
            val = dict(self.evaluate_fn(self.model))
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
        """Write a full checkpoint (model + trainer state) to `path`."""
        tensors, optim_meta = optimizer_state_to_flat(self.optimizer)
        carry_tensors, carry_layout = ckpt.state_to_flat(self.carry, "carry")
        rng_tensors, rng_meta = ckpt.rng_state()
        meta = {"step": self.step, "epoch": self.epoch, "index": self.index,
                "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
                "bad_evals": self.bad_evals, "elapsed_s": self.elapsed,
                "carry": carry_layout, "rng": rng_meta, "optimizer": optim_meta,
                "train_config": config_to_dict(self.cfg)}
        config = {**self.checkpoint_config, "step": self.step, "val_loss": val_loss}
        return ckpt.save_checkpoint(path, self.model, config,
                                    {**tensors, **carry_tensors, **rng_tensors}, meta)

    def resume(self, path: str | Path | None = None) -> bool:
        """Restore model, optimiser, RNG, step and data position from a checkpoint (default:
        `run_dir/last`). Returns False when there is nothing to resume from."""
        try:
            where = ckpt.find_checkpoint(path or self.run_dir, prefer="last")
        except FileNotFoundError:
            if path is not None:
                raise
            return False
        ckpt.load_model_weights(where, self.model)
        tensors, meta = ckpt.load_trainer_state(where)
        optimizer_state_from_flat(self.optimizer, tensors, meta["optimizer"])
        self.carry = ckpt.state_from_flat(tensors, meta["carry"], "carry")
        ckpt.set_rng_state(tensors, meta["rng"])
        self.step, self.epoch, self.index = meta["step"], meta["epoch"], meta["index"]
        self.best_loss = math.inf if meta["best_loss"] is None else meta["best_loss"]
        self.bad_evals, self.elapsed = meta["bad_evals"], meta["elapsed_s"]
        self.metrics.truncate_after(self.step)
        self.log(f"resumed from {where} at step {self.step}")
        return True


class _Window:
    """Statistics of the training steps since the last evaluation."""

    def __init__(self) -> None:
        self.steps = 0
        self.loss_sum = 0.0
        self.tokens = 0
        self.train_seconds = 0.0
        self.norm_clipped = 0
        self.value_frac_sum = 0.0

    def add_loss(self, loss: float, tokens: int) -> None:
        self.steps += 1
        self.loss_sum += loss
        self.tokens += tokens

    def add_clip(self, norm_clipped: bool, value_frac: float) -> None:
        self.norm_clipped += int(norm_clipped)
        self.value_frac_sum += value_frac

    def mean_loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)

    def rate(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def norm_clip_fraction(self) -> float:
        return self.norm_clipped / max(self.steps, 1)

    def value_clip_fraction(self) -> float:
        return self.value_frac_sum / max(self.steps, 1)
