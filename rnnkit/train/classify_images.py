"""`rnnkit train classify` on images (Fashion-MNIST, the 8x8 digits, idx files): training an
ImageClassifier, loading its run, scoring it on test images and predicting single images."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.images import ImageBatches, ImageSet, image_splits, load_images
from rnnkit.models.image_classifier import IMAGE_CELLS, ImageClassifier
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import config_to_dict
from rnnkit.train.run_dir import fingerprint
from rnnkit.train.trainer import Trainer

__all__ = ["train_images", "ImageRun", "load_image_run", "evaluate_image_run",
           "image_inputs", "MODEL_CLASS"]

MODEL_CLASS = "ImageClassifier"


def evaluate(model: ImageClassifier, batches: ImageBatches) -> dict[str, float]:
    """Mean cross-entropy, accuracy and macro F1 over every batch."""
    from rnnkit.train.classify import macro_f1

    total, truth, preds = 0.0, [], []
    with torch.no_grad():
        for x, y in batches:
            logits = model(x)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            truth += y.tolist()
            preds += logits.argmax(-1).tolist()
    correct = sum(t == p for t, p in zip(truth, preds, strict=True))
    return {"loss": total / len(truth), "accuracy": correct / len(truth),
            "f1": macro_f1(truth, preds)}


def _model_args(cfg: Any, data: ImageSet) -> dict[str, Any]:
    steps = "four-direction" if cfg.model == "four-direction" else cfg.image_steps
    if cfg.cell not in IMAGE_CELLS:
        raise ValueError(f"cell must be one of {list(IMAGE_CELLS)} for images, got {cfg.cell!r}")
    return dict(num_classes=len(data.classes), rows=int(data.images.shape[1]),
                cols=int(data.images.shape[2]), steps=steps, cell=cfg.cell,
                hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                bidirectional=cfg.bidirectional, dropout=cfg.dropout, patch=cfg.patch)


def _digest(data: ImageSet) -> str:
    h = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    h.update(np.ascontiguousarray(data.labels).tobytes())
    return h.hexdigest()[:16]


def train_images(cfg: Any, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Train an ImageClassifier as the ClassifyConfig `cfg` says (its `data` an image spec);
    returns the summary with the test part's accuracy when the data has one."""
    from rnnkit.train.lm import prepare_engine

    if cfg.valid is not None:
        raise ValueError("--valid is not used with image data: the validation images are "
                         "--valid-fraction of the training images (seeded by --split-seed)")
    train, valid, test = image_splits(cfg.data, cfg.valid_fraction, cfg.split_seed)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"data {cfg.data!r}: {len(train)} training and {len(valid)} "
                         f"validation images; both need at least one")
    pixels = train.floats()  # normalisation statistics from the training part only
    mean, std = float(pixels.mean()), float(pixels.std()) or 1.0
    del pixels
    args = _model_args(cfg, train)
    model = ImageClassifier(**args)
    steps = {"rows": args["rows"], "pixels": args["rows"] * args["cols"]}.get(args["steps"])
    log(f"data: {len(train):,} train / {len(valid):,} valid / "
        f"{len(test) if test is not None else 0:,} test images of {args['rows']}x"
        f"{args['cols']}, {len(train.classes)} classes; model {args['steps']}"
        + (f" ({steps} steps)" if steps else f" ({cfg.patch}x{cfg.patch} patches)")
        + f", {sum(p.numel() for p in model.parameters()):,} parameters")
    batches = ImageBatches(train, cfg.batch_size, mean, std, seed=cfg.seed)
    val = ImageBatches(valid, 512, mean, std, shuffle=False)

    def loss_fn(m: ImageClassifier, batch: tuple, state: Any) -> tuple:
        x, y = batch
        return F.cross_entropy(m(x), y), None, len(y)

    meta = {"model_class": MODEL_CLASS, "model_args": args, "labels": train.classes,
            "input": {"kind": "image", "mean": mean, "std": std, "scale": train.scale},
            "data_fingerprint": fingerprint(cfg.data, _digest(train), _digest(valid)),
            "run_config": config_to_dict(cfg)}
    trainer = Trainer(model, cfg, batches, loss_fn, lambda m: evaluate(m, val), out, meta,
                      log=log if not cfg.progress else None)
    if cfg.resume:
        trainer.resume()
    prepare_engine(model, log if distributed.is_main() else None)  # before the budget's clock
    summary = trainer.fit()
    if not distributed.is_main():
        return summary
    if test is not None:
        run = load_image_run(out)
        summary["test"] = evaluate(run.model, run.batches(test))
        log(f"test (best checkpoint): accuracy {summary['test']['accuracy']:.4f}, macro F1 "
            f"{summary['test']['f1']:.4f}, loss {summary['test']['loss']:.3f} on {len(test):,} "
            f"images")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


@dataclass
class ImageRun:
    """A trained ImageClassifier with the normalisation its inputs need."""

    model: ImageClassifier
    labels: list[str]
    meta: dict[str, Any]

    def batches(self, data: ImageSet, batch_size: int = 512) -> ImageBatches:
        """Unshuffled normalised batches of `data`, checked against the model's image size
        and classes."""
        a = self.meta["model_args"]
        if data.images.shape[1:] != (a["rows"], a["cols"]):
            raise ValueError(f"images of {data.source!r} are {data.images.shape[1]}x"
                             f"{data.images.shape[2]}, but the model reads {a['rows']}x"
                             f"{a['cols']} images")
        if len(data) and int(data.labels.max()) >= len(self.labels):
            raise ValueError(f"labels of {data.source!r} reach {int(data.labels.max())}, but "
                             f"the model has {len(self.labels)} classes")
        if data.scale != self.meta["input"]["scale"]:
            data = ImageSet(data.images, data.labels, data.classes,
                            self.meta["input"]["scale"], data.source)
        i = self.meta["input"]
        return ImageBatches(data, batch_size, i["mean"], i["std"], shuffle=False)

    def probabilities(self, data: ImageSet) -> torch.Tensor:
        """(N, K) class probabilities."""
        with torch.no_grad():
            return torch.cat([torch.softmax(self.model(x), -1) for x, _ in self.batches(data)])


def load_image_run(path: str | Path, prefer: str = "best") -> ImageRun:
    """An ImageClassifier run from a run or checkpoint directory."""
    where = ckpt.find_checkpoint(path, prefer)
    meta = ckpt.load_checkpoint_meta(where)
    if meta.get("model_class") != MODEL_CLASS:
        raise ValueError(f"checkpoint {str(where)!r} holds a {meta.get('model_class')!r}, not "
                         f"an {MODEL_CLASS}")
    model = ImageClassifier(**meta["model_args"])
    ckpt.load_model_weights(where, model)
    return ImageRun(model.eval(), list(meta["labels"]), meta)


def _test_images(spec: str, run_config: dict[str, Any], need_labels: bool = True
                 ) -> ImageSet:
    """What `rnnkit eval --test SPEC` scores: the digits' test part as the run split them,
    the t10k part of Fashion-MNIST or of a directory, or an images idx file."""
    if spec == "digits":
        if run_config.get("data") != "digits":
            raise ValueError(f"test 'digits' is the held-out part of the 8x8 digits, but this "
                             f"run trained on {run_config.get('data')!r}")
        _, _, test = image_splits("digits", run_config.get("valid_fraction", 0.1),
                                  run_config.get("split_seed", 0))
        return test  # type: ignore[return-value]  (the digits always have a test part)
    return load_images(spec, "test", need_labels)


def evaluate_image_run(path: str | Path, test: str, prefer: str = "best",
                       batch_size: int = 512) -> dict[str, Any]:
    """Score a run on `test`: `examples`, `accuracy`, `f1` (macro), `loss`."""
    run = load_image_run(path, prefer)
    data = _test_images(test, run.meta.get("run_config", {}))
    if len(data) == 0:
        raise ValueError(f"test {test!r} holds no images")
    return {"examples": len(data), **evaluate(run.model, run.batches(data, batch_size))}


_INPUT = re.compile(r"(?P<source>.+?)(?::(?P<index>\d+))?")


def image_inputs(spec: str, run_config: dict[str, Any]) -> tuple[list[str], ImageSet]:
    """Names and images for `rnnkit predict`: `SOURCE[:INDEX]`, SOURCE an images idx file,
    `fashion-mnist` or a directory (their test part), or `digits` (the run's test part).
    An images file needs no labels file; its images then have the label -1 (unknown)."""
    m = _INPUT.fullmatch(spec)
    source, index = m["source"], m["index"]
    data = _test_images(source, run_config, need_labels=False)
    if index is None:
        return [f"{source}:{i}" for i in range(len(data))], data
    if int(index) >= len(data):
        raise ValueError(f"input {spec!r}: index {index} is past the last image "
                         f"({len(data) - 1}) of {source!r}")
    return [spec], data.subset(np.array([int(index)]))
