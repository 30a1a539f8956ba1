"""Multi-process training on torch.distributed and DistributedDataParallel: the process group
from torchrun's environment, rank helpers, data shards, reductions over ranks, the rank-0
guard, and the error a lost process raises.

Every helper is a no-op on one process (no process group, or a group of one), so the Trainer
and the applications call them unconditionally. See docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistributedError", "TIMEOUT_ENV", "DEFAULT_TIMEOUT_S", "launched", "is_active",
           "rank", "world_size", "local_rank", "is_main", "backend_for", "timeout_s",
           "threads_per_rank", "init", "session", "local_batch_size", "shard_range",
           "shard_batch", "gather_rows", "ShardedBatches", "all_reduce", "mean_over_ranks",
           "from_main", "raise_if_lost", "collective", "gather_objects"]

T = TypeVar("T")
TIMEOUT_ENV = "RNNKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
_REQUIRED_ENV = ("RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(ConnectionError):
    """A process of a multi-process run stopped (killed, crashed, failed) or stopped answering,
    so the others cannot go on. A ConnectionError, so the `rnnkit` command reports it as one
    line (exit code 2)."""


# ---- who am I --------------------------------------------------------------------------------
def launched() -> bool:
    """Whether this process was started as one of several (torchrun sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def is_active() -> bool:
    """Whether a process group of two or more processes is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def local_rank() -> int:
    """This process's index on its own machine (torchrun's LOCAL_RANK)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """Rank 0: the one process that logs and writes checkpoints, metrics and plots."""
    return rank() == 0


def backend_for(device: torch.device | str) -> str:
    """The process-group backend for models on `device`: gloo for the CPU; on a CUDA machine
    nccl for CUDA tensors and gloo for the CPU ones (small reductions, objects).

    Example:
        >>> backend_for("cpu"), backend_for("cuda:0")
        ('gloo', 'cpu:gloo,cuda:nccl')
    """
    return "cpu:gloo,cuda:nccl" if torch.device(device).type == "cuda" else "gloo"


def timeout_s() -> float:
    """Seconds a collective waits for the other processes before failing the run
    (RNNKIT_DIST_TIMEOUT, default 600)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def threads_per_rank(cores: int | None = None, local_world: int | None = None) -> int:
    """This process's share of the machine's cores: cores // processes on this machine.

    Example:
        >>> threads_per_rank(cores=16, local_world=4), threads_per_rank(cores=2, local_world=4)
        (4, 1)
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
    if local_world is None:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or world_size()
    return max(1, cores // max(1, local_world))


_timeout = DEFAULT_TIMEOUT_S  # the running group's, for messages


def init(timeout: float | None = None) -> bool:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT)
    and give this process its share of the cores; returns True when it started the group.

    Nothing happens on a single process or when a group is already running. The backend
    follows the device (`backend_for`); each collective fails after `timeout` seconds
    (default `timeout_s()`), so a lost process ends the run instead of hanging it.
    """
    if dist.is_available() and dist.is_initialized():
        return False
    if not launched():
        return False
    missing = [k for k in _REQUIRED_ENV if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for several processes, "
                         f"but {', '.join(missing)} is not set; start the run with torchrun")
    if not dist.is_available():
        raise ImportError("this torch build has no torch.distributed; multi-process training "
                          "needs it")
    seconds = timeout if timeout is not None else timeout_s()
    device = "cpu"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        device = f"cuda:{local_rank()}"
    dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=seconds))
    global _timeout
    _timeout = seconds
    torch.set_num_threads(threads_per_rank())
    return True


@contextlib.contextmanager
def session(timeout: float | None = None) -> Iterator[None]:
    """`init()` for a `with` block; the group it started is destroyed at the end."""
    started = init(timeout)
    try:
        yield
    finally:
        if started:
            with contextlib.suppress(RuntimeError, ValueError):
                dist.destroy_process_group()


# ---- shards ----------------------------------------------------------------------------------
def local_batch_size(batch_size: int, world: int | None = None) -> int:
    """The rows each process takes of a global batch of `batch_size`.

    Raises:
        ValueError: `batch_size` does not divide evenly among the processes.
    """
    world = world or world_size()
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} is the global batch and must divide evenly "
                         f"among the {world} processes; got {batch_size} % {world} = "
                         f"{batch_size % world} (use a multiple of {world})")
    return batch_size // world


def shard_range(n: int, rank_: int, world: int) -> tuple[int, int]:
    """Rows [start, stop) of n that process `rank_` of `world` takes: contiguous blocks, the
    first n % world processes one row more.

    Example:
        >>> [shard_range(5, r, 2) for r in range(2)]
        [(0, 3), (3, 5)]
    """
    base, extra = divmod(n, world)
    start = rank_ * base + min(rank_, extra)
    return start, start + base + (1 if rank_ < extra else 0)


def _batch_dim(t: Tensor) -> int | None:
    # rnnkit's batches are time-major: (T, B, *) tensors and (B,) lengths or labels.
    return None if t.dim() == 0 else (1 if t.dim() >= 2 else 0)


def _tensors(obj: Any) -> Iterator[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _map(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(obj, Tensor):
        return obj if _batch_dim(obj) is None else fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple such as PairBatch
        return type(obj)(*(_map(o, fn) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return obj


def shard_batch(batch: Any, rank_: int | None = None, world: int | None = None) -> Any:
    """This process's rows of a global batch: every tensor of `batch` (nested tuples,
    NamedTuples, lists, dicts) cut along its batch dimension (dim 1 of (T, B, *) tensors,
    dim 0 of (B,) ones); None when the rows run out before this rank (a short last batch).

    Raises:
        ValueError: the tensors disagree on the batch size, or there is none.
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    sizes = {t.shape[d] for t in _tensors(batch) if (d := _batch_dim(t)) is not None}
    if len(sizes) != 1:
        shapes = [tuple(t.shape) for t in _tensors(batch)]
        raise ValueError(f"batch must hold tensors with one batch size B ((T, B, *) and (B,) "
                         f"shapes) to be split among processes, got shapes {shapes}")
    start, stop = shard_range(sizes.pop(), rank_, world)
    if start == stop:
        return None
    return _map(batch, lambda t: t.narrow(_batch_dim(t), start, stop - start))


class ShardedBatches:
    """A BatchSource whose batch(i) is this process's rows of `source.batch(i)`: every process
    builds the same global batch (same seed, epoch and index) and keeps its own block of rows,
    so a data position is still `(epoch, index)`. For the language model's streams, process r
    reads streams [r*B/W, (r+1)*B/W), a contiguous 1/W of the training text."""

    def __init__(self, source: Any, rank_: int | None = None, world: int | None = None) -> None:
        self.source = source
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.source, "set_epoch"):
            self.source.set_epoch(epoch)

    def batch(self, index: int) -> Any:
        return shard_batch(self.source.batch(index), self.rank, self.world)

    def __iter__(self) -> Iterator[Any]:
        return (self.batch(i) for i in range(len(self)))


# ---- collectives -----------------------------------------------------------------------------
_COMM_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "broken pipe", "socket")


def raise_if_lost(err: BaseException, where: str, run_dir: Any = None) -> None:
    """Raise DistributedError (from `err`) when `err` is a failed collective of a running
    multi-process run; otherwise return, and the caller re-raises `err` as it is."""
    text = str(err)
    if not is_active() or not (isinstance(err, getattr(dist, "DistError", ())) or
                               any(w in text.lower() for w in _COMM_WORDS)):
        return
    said = re.sub(r"^\[[^\]]*\]\s*", "", text.strip().splitlines()[0] if text.strip() else "")
    said = said.split(". ")[0].rstrip(".")  # gloo adds advice and an emoji after it
    hint = (f"; checkpoints so far are in {run_dir}, continue with --resume"
            if run_dir and is_main() else "")  # the other ranks' run_dir is a scratch folder
    raise DistributedError(
        f"process {rank()} of {world_size()} lost the others {where}: another process of the "
        f"run stopped (killed or crashed) or did not answer within the {_timeout:g} s timeout "
        f"({TIMEOUT_ENV}); torch.distributed said: {said[:300]}{hint}") from err


@contextlib.contextmanager
def collective(where: str) -> Iterator[None]:
    """Turn a failed collective inside the block into DistributedError (see raise_if_lost)."""
    try:
        yield
    except RuntimeError as err:
        raise_if_lost(err, where)
        raise


def all_reduce(values: Sequence[float], op: str = "sum") -> list[float]:
    """`values` summed ("sum") or maximised ("max") over the processes, in float64."""
    if not is_active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    with collective("in a reduction"):
        dist.all_reduce(t, dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.tolist()


def mean_over_ranks(metrics: dict[str, float]) -> dict[str, float]:
    """Each metric averaged over the processes (the same keys on each, in any order)."""
    if not is_active():
        return dict(metrics)
    keys = sorted(metrics)
    sums = all_reduce([metrics[k] for k in keys])
    return {k: s / world_size() for k, s in zip(keys, sums, strict=True)}


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj` (picklable), in rank order."""
    parts: list[Any] = [None] * world_size()
    with collective("while gathering state"):
        dist.all_gather_object(parts, obj)
    return parts


def gather_rows(state: Any) -> Any:
    """The inverse of `shard_batch`: every process's rows of `state` (None, a tensor, or a
    tuple of tensors, e.g. a carried recurrent state (L*D, B, H)) joined in rank order."""
    if not is_active() or state is None:
        return state
    parts = gather_objects(_map(state, lambda t: t.detach().cpu()))
    if isinstance(state, Tensor):
        return torch.cat(parts, dim=_batch_dim(state))
    return type(state)(torch.cat([p[i] for p in parts], dim=_batch_dim(s))
                       for i, s in enumerate(state))


def from_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and hand its result to every process; when it fails, rank 0
    re-raises its error and the others raise DistributedError naming it."""
    if not is_active():
        return fn()
    box: list[Any] = [None]
    failure: BaseException | None = None
    if is_main():
        try:
            box[0] = (True, fn())
        except BaseException as err:  # noqa: BLE001 - re-raised below, after telling the others
            failure, box[0] = err, (False, f"{type(err).__name__}: {err}")
    with collective("waiting for rank 0"):
        dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    ok, value = box[0]
    if not ok:
        raise DistributedError(f"rank 0 stopped the run: {value}")
    return value
