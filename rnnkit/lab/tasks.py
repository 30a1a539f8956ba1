"""Classic synthetic tasks: adding and copy problems, Mackey-Glass series, ListOps trees."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor

__all__ = ["adding_problem", "copy_problem", "temporal_order", "TEMPORAL_ORDER_SYMBOLS",
           "pixel_digits",
           "mackey_glass", "list_ops", "LISTOPS_OPS"]

#: Token ids of the temporal-order task: distractors a-d, the relevant X and Y, start E, end B.
TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "E", "B")


def adding_problem(
    batch: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    Each step carries a random value in [0, 1) and a marker; exactly two steps are marked, one
    in each half of the sequence, and the target is the sum of their values. A model that
    predicts 1.0 always has mean squared error ~0.167; solving the task needs memory over
    `length` steps.

    Returns:
        x (T, B, 2) float32 (value, marker) and y (B,) float32.
    """
    if length < 2:
        raise ValueError(f"length must be at least 2, got {length}")
    values = torch.rand(length, batch, generator=generator)  # (T, B)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(length, batch)
    cols = torch.arange(batch)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    y = values[first, cols] + values[second, cols]
    return torch.stack([values, markers], dim=-1), y


def copy_problem(
    batch: int, delay: int, n_symbols: int = 8, n_copy: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The copy memory problem: remember `n_copy` symbols across `delay` blank steps.

    Symbols 1..n_symbols are data, 0 is blank, n_symbols + 1 is the "recall now" cue. The
    input is the data, `delay` blanks with the cue on the last one, then `n_copy` blanks;
    the target is blank everywhere except the final `n_copy` steps, which repeat the data.
    The no-memory baseline loss is n_copy * log(n_symbols) / (n_copy * 2 + delay) nats.

    Returns:
        x (T, B) int64 tokens and y (T, B) int64 targets, T = delay + 2 * n_copy.
    """
    if delay < 1 or n_copy < 1 or n_symbols < 2:
        raise ValueError(f"need delay >= 1, n_copy >= 1, n_symbols >= 2; got delay={delay}, "
                         f"n_copy={n_copy}, n_symbols={n_symbols}")
    data = torch.randint(1, n_symbols + 1, (n_copy, batch), generator=generator)
    T = delay + 2 * n_copy
    x = torch.zeros(T, batch, dtype=torch.long)
    x[:n_copy] = data
    x[n_copy + delay - 1] = n_symbols + 1
    y = torch.zeros(T, batch, dtype=torch.long)
    y[-n_copy:] = data
    return x, y


def temporal_order(
    batch: int, length: int = 100, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Hochreiter & Schmidhuber's temporal-order task (1997, experiment 6a).

    A sequence starts with E and ends with B; every other step is a random distractor a-d,
    except two steps that hold X or Y: t1 in [0.1 T, 0.2 T] and t2 in [0.5 T, 0.6 T] (for the
    paper's T = 100-110: [10, 20] and [50, 60]). The class is the order of the two relevant
    symbols: XX, XY, YX or YY (0-3). The length of each sequence is drawn from [T, 1.1 T];
    a classifier must carry the first symbol across ~40 distractors. Chance is 25%; the
    paper counts the task solved when fewer than 1% of fresh sequences are misclassified.

    Returns:
        x (T_max, B) int64 token ids (`TEMPORAL_ORDER_SYMBOLS`, padded with B past each
        length), y (B,) int64 classes, lengths (B,) int64.
    """
    if length < 10:
        raise ValueError(f"length must be at least 10, got {length}")
    lengths = torch.randint(length, length + length // 10 + 1, (batch,), generator=generator)
    T = int(lengths.max())
    x = torch.randint(0, 4, (T, batch), generator=generator)  # distractors a-d
    cols = torch.arange(batch)
    x[0] = 6  # E
    x[lengths - 1, cols] = 7  # B at each sequence's own end
    pad = torch.arange(T).unsqueeze(1) >= lengths  # (T, B) past the end
    x[pad] = 7
    t1 = torch.randint(length // 10, length // 5 + 1, (batch,), generator=generator)
    t2 = torch.randint(length // 2, 3 * length // 5 + 1, (batch,), generator=generator)
    first = torch.randint(0, 2, (batch,), generator=generator)  # 0: X, 1: Y
    second = torch.randint(0, 2, (batch,), generator=generator)
    x[t1, cols] = 4 + first
    x[t2, cols] = 4 + second
    return x, 2 * first + second, lengths


def pixel_digits(split: str = "train", test_fraction: float = 0.25,
                 seed: int = 0) -> tuple[Tensor, Tensor]:
    """Le, Jaitly & Hinton's pixel-by-pixel task (2015) on scikit-learn's 8x8 digits.

    Each image is read one pixel per step in scan-line order (64 steps, one feature scaled to
    [0, 1]); the class is the digit, known only after the last pixel. The 1,797 images are
    split once, by a fixed permutation (`seed`), into train and test.

    Returns:
        x (64, N, 1) float32 and y (N,) int64 for `split` ("train" or "test").
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("pixel_digits needs scikit-learn (pip install 'rnnkit[all]')") from err
    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8, 8)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = round(len(labels) * test_fraction)
    index = order[:n_test] if split == "test" else order[n_test:]
    x = images[index].reshape(len(index), 64).T.unsqueeze(-1)  # (64, N, 1)
    return x.contiguous(), labels[index]


def mackey_glass(
    n: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1, power: float = 10.0,
    dt: float = 0.1, sample_every: float = 1.0, x0: float = 1.2, discard: int = 500,
) -> Tensor:
    """The Mackey-Glass delay differential equation, chaotic for tau = 17.

    dx/dt = beta * x(t - tau) / (1 + x(t - tau)^power) - gamma * x(t)

    Integrated with Heun's method at step `dt` (history held constant at x0 before t = 0) and
    sampled every `sample_every` time units; the first `discard` samples are dropped so the
    series starts on the attractor.

    Returns:
        (n,) float64 series.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    per_sample = round(sample_every / dt)
    lag = round(tau / dt)
    total = (n + discard) * per_sample
    x = torch.empty(total + lag + 1, dtype=torch.float64)
    x[: lag + 1] = x0
    xs = x.tolist()

    def f(now: float, past: float) -> float:
        return beta * past / (1 + past**power) - gamma * now

    for i in range(lag, lag + total):
        k1 = f(xs[i], xs[i - lag])
        predictor = xs[i] + dt * k1
        k2 = f(predictor, xs[i - lag + 1])
        xs[i + 1] = xs[i] + dt * (k1 + k2) / 2
    series = torch.tensor(xs[lag + 1:], dtype=torch.float64)[::per_sample]
    return series[discard: discard + n]


LISTOPS_OPS = {10: "MAX", 11: "MIN", 12: "SUM_MOD"}


def list_ops(n: int, max_depth: int = 3, max_args: int = 4,
             ops: tuple[str, ...] = ("MAX", "MIN", "SUM_MOD"),
             generator: torch.Generator | random.Random | None = None
             ) -> list[tuple[Any, int]]:
    """Random ListOps-style expression trees (after Nangia & Bowman 2018) and their values.

    Leaves are digits 0-9 (labels 0-9); an operator node (labels 10 MAX, 11 MIN, 12 SUM_MOD:
    the sum modulo 10) has 2..max_args children. Every operator is commutative, so a model
    that ignores child order (Child-Sum Tree-LSTM) can solve the task; the value, a digit,
    depends on the whole tree. `ops` restricts the operators (SUM_MOD is the hard one).
    `generator` may be a `random.Random`, which draws large sets several times faster.

    Returns:
        n pairs (rnnkit.layers.tree.Tree, value in 0..9).
    """
    from rnnkit.layers.tree import Tree

    if max_depth < 1 or max_args < 2:
        raise ValueError(f"need max_depth >= 1 and max_args >= 2, got {max_depth}, {max_args}")
    codes = {name: code for code, name in LISTOPS_OPS.items()}
    unknown = sorted(set(ops) - set(codes))
    if not ops or unknown:
        raise ValueError(f"ops must be a non-empty subset of {sorted(codes)}, got {ops!r}")
    allowed = [codes[o] for o in ops]

    def draw(hi: int) -> int:
        if isinstance(generator, random.Random):
            return generator.randrange(hi)
        return int(torch.randint(0, hi, (1,), generator=generator))

    def build(depth: int) -> tuple[Tree, int]:
        if depth == 0 or (depth < max_depth and draw(3) == 0):
            digit = draw(10)
            return Tree(digit), digit
        op = allowed[draw(len(allowed))]
        kids = [build(depth - 1) for _ in range(2 + draw(max_args - 1))]
        values = [v for _, v in kids]
        value = max(values) if op == 10 else min(values) if op == 11 else sum(values) % 10
        return Tree(op, [t for t, _ in kids]), value

    return [build(max_depth) for _ in range(n)]
