"""The Trainer's side of a multi-process run: the forward pass through DistributedDataParallel,
the loss weighting that makes W processes equal one, the stopping agreement, and each rank's
random streams in checkpoints."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rnnkit.train.distributed import (
    ShardedBatches,
    all_reduce,
    collective,
    gather_objects,
    local_batch_size,
    rank,
    shard_batch,
    world_size,
)

__all__ = ["Replicas"]


class _LossModule(nn.Module):
    """The step's forward pass as a module: DistributedDataParallel hooks a module's forward,
    and the applications compute their loss through model methods (`model.loss(...)`)."""

    def __init__(self, model: nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: Any, state: Any) -> tuple[Tensor, Any, int]:
        if batch is None:
            # No rows left for this rank (a short last batch): a zero loss that still reaches
            # every weight, so that DDP's reduction gets a (zero) gradient from this rank too.
            zero = sum(p.sum() for p in self.model.parameters() if p.requires_grad)
            return zero * 0.0, None, 0
        return self.loss_fn(self.model, batch, state)


def _rank_seed(seed: int, rank_: int, step: int = 0) -> int:
    return (seed * 1_000_003 + rank_ * 7_919 + step) % (2 ** 63)


class Replicas:
    """The Trainer's side of a multi-process run (create it only when `is_active()`).

    Every process holds the same model; `loss` runs the forward pass through
    DistributedDataParallel on this rank's rows, so backward averages the gradients of all
    ranks. Ranks other than 0 draw their own random numbers (dropout, sampling) from seeds
    derived from the run's seed and their rank; rank 0's stream is a single process's.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, config: Any) -> None:
        self.world, self.rank = world_size(), rank()
        if getattr(config, "batch_size", None):
            local_batch_size(config.batch_size, self.world)
        self.model, self.loss_fn, self.seed = model, loss_fn, config.seed
        self.ddp: DistributedDataParallel | None = None
        self.rng_restored = False
        self.trainer: Any = None

    @classmethod
    def join(cls, trainer: Any) -> Replicas:
        """Set `trainer` up as this process's part of the run: its batches become this rank's
        rows of each batch, and only rank 0 logs."""
        self = cls(trainer.model, trainer.loss_fn, trainer.cfg)
        self.trainer = trainer
        trainer.batches = ShardedBatches(trainer.batches)
        if self.rank > 0:
            trainer.log = lambda line: None
        trainer.log(f"distributed: {self.world} processes ({dist.get_backend()}), "
                    f"{torch.get_num_threads()} thread(s) each, "
                    f"{getattr(trainer.cfg, 'batch_size', '?')} rows per global batch; rank 0 "
                    f"writes the run")
        return self

    def start(self, generators: dict[str, torch.Generator]) -> None:
        """Wrap the model (DDP copies rank 0's weights to every rank) and, unless a checkpoint
        restored them, give ranks > 0 their own random streams. Idempotent."""
        if self.ddp is not None:
            return
        p = next(self.model.parameters())
        with collective("while starting"):
            self.ddp = DistributedDataParallel(
                _LossModule(self.model, self.loss_fn),
                device_ids=[p.device.index] if p.device.type == "cuda" else None)
        if self.rank > 0 and not self.rng_restored:
            self._reseed(generators, 0)

    def _reseed(self, generators: dict[str, torch.Generator], step: int) -> None:
        s = _rank_seed(self.seed, self.rank, step)
        torch.manual_seed(s)
        random.seed(s)
        for k, g in generators.items():
            g.manual_seed(_rank_seed(s, zlib.crc32(k.encode())))

    def loss(self, model: nn.Module, batch: Any, state: Any) -> tuple[Tensor, Any, int]:
        """A LossFn over this rank's rows whose value is the global batch's mean loss and whose
        gradient, averaged by DDP, is the global batch's (ranks weighted by their tokens)."""
        loss, state, n = self.ddp(batch, state)
        total, count = all_reduce([loss.item() * n if n else 0.0, float(n)])
        scaled = loss * (n * self.world / count) if count else loss * 0.0
        mean = torch.tensor(total / max(count, 1.0), dtype=loss.dtype, device=loss.device)
        return mean + (scaled - scaled.detach()), state, int(count)

    def agree(self) -> None:
        """Give the trainer the largest elapsed time and any stop request (Ctrl-C) of all
        ranks, so that every rank takes the same stopping decision at the same step."""
        t = self.trainer
        e, s = all_reduce([t.elapsed, float(t._stop_requested)], op="max")
        t.elapsed, t._stop_requested = e, bool(s)

    def rng_to_flat(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Every rank's random state (torch, Python, the trainer's generators) as tensors and
        JSON for rank 0's checkpoint."""
        parts = gather_objects(self.trainer._rng_snapshot())
        tensors: dict[str, Tensor] = {}
        pythons = []
        for r, (torch_state, py_state, gens) in enumerate(parts):
            tensors[f"rng.rank{r}.torch"] = torch_state
            tensors.update({f"rng.rank{r}.gen.{k}": v for k, v in gens.items()})
            pythons.append([py_state[0], list(py_state[1]), py_state[2]])
        return tensors, {"world_size": self.world, "python": pythons}

    def restore(self, weights: dict[str, Tensor], tensors: dict[str, Tensor],
                meta: dict[str, Any]) -> str | None:
        """After the trainer restored a checkpoint that rank 0 read: the weights (ranks > 0),
        this rank's rows of the carried state, and this rank's random streams. Returns a note
        when the streams could not be restored (the checkpoint came from another number of
        processes)."""
        t = self.trainer
        if self.rank > 0:
            t.model.load_state_dict(weights)
        t.carry = shard_batch(t.carry) if t.carry is not None else None
        self.rng_restored = True
        saved = meta.get("rng_ranks")
        if not saved or saved.get("world_size") != self.world:
            if self.rank > 0:
                self._reseed(t.generators, t.step)
            return (f"note: the checkpoint was written by {saved['world_size'] if saved else 1}"
                    f" process(es), this run has {self.world}: ranks > 0 draw fresh random "
                    f"streams from step {t.step}")
        if self.rank == 0:  # the trainer restored rank 0's streams (a single process's)
            return None
        torch.set_rng_state(tensors[f"rng.rank{self.rank}.torch"])
        v, internal, gauss = saved["python"][self.rank]
        random.setstate((v, tuple(internal), gauss))
        for k, g in t.generators.items():
            g.set_state(tensors[f"rng.rank{self.rank}.gen.{k}"])
        return None
