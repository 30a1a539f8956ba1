"""The ListOps depth-generalisation experiment: train on expressions of depth <= 3, test at each
depth 1..6, with a Child-Sum Tree-LSTM, a binary Tree-LSTM over the binarized tree, or an LSTM
reading the flattened expression; `main(config)` trains one model in a run directory."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit as rk
from rnnkit.data.labeled import ItemBatches
from rnnkit.lab.tasks import LISTOPS_OPS, list_ops
from rnnkit.layers.tree import BinaryTreeLSTM, ChildSumTreeLSTM, Tree, TreeBatch, binarize
from rnnkit.train.config import TrainConfig, config_to_dict, option, start_run
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["ListOpsConfig", "MODELS", "TINY", "ListOpsModel", "ListOpsData", "to_tokens",
           "to_text", "depth", "in_test_bucket", "build_data", "depth_test_sets", "main",
           "evaluate_model", "TEST_FILE", "CLOSE", "VOCAB"]

MODELS = ("tree-lstm", "binary-tree-lstm", "lstm")
CLOSE = 13  # the token that closes an operator's argument list, "]"
VOCAB = 14  # digits 0-9, operators 10-12 (written "[MAX", "[MIN", "[SM"), and "]"
TEST_FILE = "test.json"
_TEST_SEED = 20_151  # test sets depend on this, the depth and the task settings, never on --seed
_TEST_FRACTION = 0.1  # share of all expressions (by hash of their text) kept out of training
_NAMES = {**{code: "[" + ("SM" if name == "SUM_MOD" else name)
             for code, name in LISTOPS_OPS.items()}, CLOSE: "]"}


@dataclass
class ListOpsConfig(TrainConfig):
    """One model on the ListOps task: data sizes and depths, the model, the Trainer's settings."""

    model: str = option("tree-lstm", "child-sum Tree-LSTM, binary Tree-LSTM over the "
                        "binarized tree (left-branching), or an LSTM (rk.LSTM, fused engine) "
                        "reading the flattened tokens", MODELS)
    train_depth: int = option(3, "training expressions have depth 1..train_depth", low=1)
    test_depth: int = option(6, "test sets at every depth 1..test_depth", low=1)
    max_args: int = option(4, "arguments per operator: 2..max_args", low=2)
    train_size: int = option(100_000, "training expressions (a fixed seeded set)", low=1)
    valid_size: int = option(2000, "validation expressions (training depths, seeded)", low=1)
    test_size: int = option(1000, "test expressions per depth (fixed seed, disjoint from "
                            "training)", low=1)
    embed_size: int = option(32, "token embedding size", low=1)
    hidden_size: int = option(64, "hidden size H", low=1)
    batch_size: int = option(64, "expressions per step", low=1)
    out: str = option("runs/listops", "run directory")
    optimizer: str = option("adam", "optimiser", ("adam", "adamw", "rmsprop", "sgd"))
    lr: float = option(2e-3, "peak learning rate")
    max_steps: int = option(0, "stop after this many optimiser steps (0: no step limit)")
    time_budget: float = option(8.0, "stop after this many minutes of training (0: no limit); "
                                "--budget is the same flag")
    eval_every: int = option(250, "evaluate and checkpoint every N steps", low=1)
    carry_state: bool = option(False, "carry state between batches (independent "
                               "expressions: off)")


TINY: dict[str, Any] = dict(train_size=64, valid_size=16, test_size=8, test_depth=4,
                            embed_size=8, hidden_size=8, batch_size=16, max_steps=4,
                            time_budget=0.0, eval_every=2, progress=False)


def to_tokens(tree: Tree) -> list[int]:
    """The expression as the token ids an LSTM reads: `[OP arg ... ]`, digits as themselves."""
    if not tree.children:
        return [tree.label]
    return [tree.label, *(t for kid in tree.children for t in to_tokens(kid)), CLOSE]


def to_text(tree: Tree) -> str:
    """The expression as text, e.g. `[MAX 3 [SM 4 5 ] ]`."""
    return " ".join(_NAMES.get(t, str(t)) for t in to_tokens(tree))


def depth(tree: Tree) -> int:
    """Nesting depth: 0 for a digit, 1 + the deepest argument for an operator."""
    return 1 + max((depth(k) for k in tree.children), default=-1)


def in_test_bucket(text: str) -> bool:
    """Whether an expression belongs to the held-out part: a fixed 10% of all expressions, by
    a hash of the text, so that training and test sets are disjoint whatever the seeds."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) < _TEST_FRACTION * 16**8


def _draw(n: int, max_depth: int, cfg: ListOpsConfig, rng: random.Random,
          keep: Callable[[Tree], bool], what: str) -> list[tuple[Tree, int]]:
    """n expressions of list_ops(max_depth) that pass `keep`."""
    out: list[tuple[Tree, int]] = []
    tries = 0
    while len(out) < n:
        chunk = list_ops(min(4096, 2 * (n - len(out)) + 16), max_depth, cfg.max_args,
                         generator=rng)
        tries += len(chunk)
        out.extend(item for item in chunk if keep(item[0]))
        if tries > 1000 * n + 10_000:
            raise ValueError(f"could not draw {n} {what} expressions (max_depth={max_depth}, "
                             f"max_args={cfg.max_args}) in {tries} tries; ask for fewer")
    return out[:n]


def depth_test_sets(cfg: ListOpsConfig) -> dict[int, list[tuple[Tree, int]]]:
    """The test set of each depth 1..test_depth: expressions of exactly that depth from a
    fixed seed; at training depths only held-out ones (`in_test_bucket`)."""
    sets = {}
    for d in range(1, cfg.test_depth + 1):
        def keep(t: Tree, d: int = d) -> bool:
            return depth(t) == d and (d > cfg.train_depth or in_test_bucket(to_text(t)))
        sets[d] = _draw(cfg.test_size, d, cfg, random.Random(_TEST_SEED * 100 + d), keep,
                        f"depth-{d} test")
    return sets


@dataclass
class ListOpsData:
    train: list[tuple[Tree, int]]
    valid: list[tuple[Tree, int]]
    tests: dict[int, list[tuple[Tree, int]]]


def build_data(cfg: ListOpsConfig) -> ListOpsData:
    """Training and validation expressions (depth <= train_depth, seeded by `cfg.seed`, none
    in the held-out bucket) and the fixed test sets."""
    def keep(t: Tree) -> bool:
        return not in_test_bucket(to_text(t))
    train = _draw(cfg.train_size, cfg.train_depth, cfg, random.Random(cfg.seed), keep,
                  "training")
    valid = _draw(cfg.valid_size, cfg.train_depth, cfg, random.Random(cfg.seed + 1), keep,
                  "validation")
    return ListOpsData(train, valid, depth_test_sets(cfg))


class ListOpsModel(nn.Module):
    """Token embedding -> an encoder of the expression -> a linear read-out of 10 values.

    `tree-lstm`: ChildSumTreeLSTM over the expression tree, read at the root; `binary-tree-lstm`:
    BinaryTreeLSTM over `binarize(tree)` (left-branching, inner nodes repeat the operator);
    `lstm`: rk.LSTM over `to_tokens(tree)`, read at the last token.
    """

    def __init__(self, model: str, embed_size: int, hidden_size: int) -> None:
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
        self.kind = model
        self.embed = nn.Embedding(VOCAB, embed_size)
        if model == "tree-lstm":
            self.encoder: nn.Module = ChildSumTreeLSTM(embed_size, hidden_size)
        elif model == "binary-tree-lstm":
            self.encoder = BinaryTreeLSTM(embed_size, hidden_size)
        else:
            self.encoder = rk.LSTM(embed_size, hidden_size, forget_bias=1.0)
        self.head = nn.Linear(hidden_size, 10)

    def prepare(self, tree: Tree) -> Any:
        """What one expression becomes before batching (done once per expression)."""
        if self.kind == "tree-lstm":
            return tree
        if self.kind == "binary-tree-lstm":
            return binarize(tree)
        return torch.tensor(to_tokens(tree), dtype=torch.long)

    def collate(self, items: Sequence[Any]) -> Any:
        """Prepared expressions -> the encoder's batch (a TreeBatch, or tokens and lengths)."""
        if self.kind != "lstm":
            return TreeBatch.from_trees(list(items))
        lengths = torch.tensor([len(t) for t in items])
        x = torch.zeros(int(lengths.max()), len(items), dtype=torch.long)  # (T, B)
        for b, t in enumerate(items):
            x[: len(t), b] = t
        return x, lengths

    def forward(self, batch: Any) -> Tensor:
        """Logits (B, 10) of the value of each expression."""
        if self.kind != "lstm":
            h, _ = self.encoder(self.embed(batch.labels), batch)  # (N, H)
            return self.head(h[batch.roots])
        x, lengths = batch
        out, _ = self.encoder(self.embed(x), lengths=lengths)  # (T, B, H)
        return self.head(out[lengths - 1, torch.arange(x.shape[1])])


class _Batches(ItemBatches):
    """Seeded shuffled batches of prepared expressions: (encoder batch, values (B,))."""

    def __init__(self, model: ListOpsModel, items: list[tuple[Any, int]], batch_size: int,
                 seed: int) -> None:
        self.model, self.items = model, items
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, True, seed, 0

    def collate_items(self, items: Sequence[tuple[Any, int]]) -> tuple[Any, Tensor]:
        return self.model.collate([x for x, _ in items]), torch.tensor([y for _, y in items])


def _chunks(model: ListOpsModel, items: list[tuple[Tree, int]], size: int = 256
            ) -> list[tuple[Any, Tensor]]:
    out = []
    for i in range(0, len(items), size):
        part = items[i:i + size]
        out.append((model.collate([model.prepare(t) for t, _ in part]),
                    torch.tensor([v for _, v in part])))
    return out


def evaluate_model(model: ListOpsModel, batches: list[tuple[Any, Tensor]]
                   ) -> dict[str, float]:
    """Mean cross-entropy and accuracy over pre-collated batches."""
    total = correct = n = 0.0
    with torch.no_grad():
        for inputs, y in batches:
            logits = model(inputs)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
            n += len(y)
    return {"loss": total / n, "accuracy": correct / n}


def _majority(items: list[tuple[Tree, int]]) -> float:
    counts = torch.bincount(torch.tensor([v for _, v in items]), minlength=10)
    return counts.max().item() / len(items)


def main(config: ListOpsConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train `config.model` on ListOps; test the best checkpoint at every depth; returns the
    summary (also in OUT/summary.json; the per-depth table in OUT/test.json)."""
    if config.test_depth < config.train_depth:
        raise ValueError(f"test_depth ({config.test_depth}) must be >= train_depth "
                         f"({config.train_depth})")
    with start_run(config, log) as out:
        return _train(config, out, log)


def _train(cfg: ListOpsConfig, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    data = build_data(cfg)
    model = ListOpsModel(cfg.model, cfg.embed_size, cfg.hidden_size)
    train = [(model.prepare(t), v) for t, v in data.train]
    data.train = []  # the prepared copies are all that training needs
    valid = _chunks(model, data.valid)
    log(f"listops, model {cfg.model}: {len(train)} training expressions of depth <= "
        f"{cfg.train_depth}, {len(data.valid)} validation, {cfg.test_size} test per depth "
        f"1..{cfg.test_depth}")
    meta = {"model_class": "ListOpsModel", "run_config": config_to_dict(cfg),
            "data_fingerprint": fingerprint("listops", cfg.seed, cfg.train_size,
                                            cfg.train_depth, cfg.max_args),
            "model_args": {"model": cfg.model, "embed_size": cfg.embed_size,
                           "hidden_size": cfg.hidden_size}}

    def loss_fn(m: nn.Module, batch: tuple[Any, Tensor], state: Any) -> tuple[Tensor, None, int]:
        inputs, y = batch
        return F.cross_entropy(m(inputs), y), None, len(y)

    trainer = Trainer(model, cfg, _Batches(model, train, cfg.batch_size, cfg.seed), loss_fn,
                      lambda m: evaluate_model(m, valid), out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    summary = trainer.fit()
    best = out / "best"
    if (best / "model.safetensors").exists():
        from rnnkit.train.checkpoint import load_model_weights
        load_model_weights(best, model)
    model.eval()
    result = _test(model, cfg, data.tests)
    result.update(steps=summary["step"], train_wall_s=summary["elapsed_s"],
                  valid_accuracy=evaluate_model(model, valid)["accuracy"])
    _write_json(out / TEST_FILE, result)
    summary.update(model=cfg.model, test_accuracy=result["test_accuracy"],
                   valid_accuracy=result["valid_accuracy"])
    _write_json(out / "summary.json", summary)
    accs = ", ".join(f"d{d} {a:.3f}" for d, a in result["test_accuracy"].items())
    log(f"test accuracy per depth (best checkpoint): {accs}; run in {out}")
    return summary


def _test(model: ListOpsModel, cfg: ListOpsConfig, tests: dict[int, list[tuple[Tree, int]]]
          ) -> dict[str, Any]:
    accuracy = {str(d): evaluate_model(model, _chunks(model, items))["accuracy"]
                for d, items in tests.items()}
    return {"model": cfg.model, "test_accuracy": accuracy,
            "majority_baseline": {str(d): _majority(items) for d, items in tests.items()},
            "test_size": cfg.test_size, "train_depth": cfg.train_depth,
            "test_fingerprint": fingerprint([[to_text(t) for t, _ in tests[d]]
                                             for d in sorted(tests)])}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)

