"""Optimisers, the learning-rate schedule, and optimiser state as flat tensors + JSON."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.train.config import TrainConfig

__all__ = ["build_optimizer", "lr_factor", "clip_gradients", "optimizer_state_to_flat",
           "optimizer_state_from_flat"]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by `cfg.optimizer`, over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                 weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adam, adamw, rmsprop or sgd, got {cfg.optimizer!r}")


def lr_factor(cfg: TrainConfig, step: int, progress: float) -> float:
    """Multiplier on `cfg.lr` for the step about to run.

    Linear warm-up over `warmup_steps`, then `schedule` from 1 down to `min_lr_ratio` as
    `progress` (fraction of the run done, by steps or by time) goes from 0 to 1.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    floor = cfg.min_lr_ratio
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "linear":
        return floor + (1.0 - floor) * (1.0 - p)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


def clip_gradients(model: nn.Module, cfg: TrainConfig) -> tuple[bool, float, float]:
    """Clip the gradients by value (`cfg.clip_value`), then by global norm (`cfg.clip_norm`).

    Returns (norm clipping happened, fraction of elements value-clipped, the gradient norm
    before norm clipping: not finite when some gradient is not).
    """
    params = [p for p in model.parameters() if p.grad is not None]
    frac = 0.0
    if cfg.clip_value:
        v = cfg.clip_value
        total = sum(p.grad.numel() for p in params)
        clipped = sum(int((p.grad.abs() > v).sum()) for p in params)
        frac = clipped / max(total, 1)
        torch.nn.utils.clip_grad_value_(params, v)
    if not params:
        return False, frac, 0.0
    if cfg.clip_norm:
        norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm))
        return norm > cfg.clip_norm, frac, norm
    return False, frac, float(torch.nn.utils.get_total_norm([p.grad for p in params]))


def optimizer_state_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split `opt.state_dict()` into tensors (for safetensors) and the rest (for JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": scalars}


def optimizer_state_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, Tensor],
                              meta: dict[str, Any]) -> None:
    """Inverse of `optimizer_state_to_flat`: load the state into `opt`."""
    state: dict[int, dict[str, Any]] = {}
    for pid, st in meta["state"].items():
        state.setdefault(int(pid), {}).update(st)
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
