"""Tests for rnnkit.train: the Trainer (TBPTT carry, clipping, resume, metrics) and main(config)."""

import json
import math

import pytest
import torch

from rnnkit.data import StreamBatches
from rnnkit.models import LanguageModel
from rnnkit.train import TrainConfig, Trainer, config_from_dict
from rnnkit.train.lm import TINY, LMConfig, main
from rnnkit.train.optim import lr_factor, optimizer_state_from_flat, optimizer_state_to_flat

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


def _model(dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return LanguageModel(12, embedding_size=3, hidden_size=5, num_layers=2, dropout=dropout,
                         backend="torch")


def _loss_fn(model, batch, state):
    x, y = batch
    loss, state = model.loss(x, y, state)
    return loss, state, x.numel()


def _eval_fn(val):
    def evaluate(model):
        return {"loss": sum(model.loss(x, y)[0].item() for x, y in val) / len(val)}
    return evaluate


def _trainer(tmp_path, model, ids, **overrides):
    cfg = TrainConfig(**{"max_steps": 8, "eval_every": 4, "progress": False, "lr": 1e-2,
                         **overrides})
    batches = StreamBatches(ids, batch_size=2, seq_len=4)
    return Trainer(model, cfg, batches, _loss_fn, _eval_fn(batches), tmp_path,
                   {"model_class": "LanguageModel", "model_args": model.config()},
                   log=lambda s: None)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _ids(n=200, seed=3):
    return torch.randint(0, 12, (n,), generator=torch.Generator().manual_seed(seed))


def test_tbptt_carry_equals_one_long_pass_at_first_chunk_boundary(tmp_path):
    ids = _ids()
    model = _model()
    # lr = 0 keeps the weights fixed, so step 2's loss depends only on the carried state.
    trainer = _trainer(tmp_path, model, ids, lr=0.0, max_steps=2, clip_norm=0.0)
    trainer.fit()
    batches = trainer.batches
    x = torch.cat([batches.batch(0)[0], batches.batch(1)[0]])   # (2T, B)
    y = torch.cat([batches.batch(0)[1], batches.batch(1)[1]])
    with torch.no_grad():
        logits, _ = model(x)
        long_pass = torch.nn.functional.cross_entropy(logits[4:].flatten(0, 1), y[4:].flatten())
        fresh = model.loss(*batches.batch(1))[0]
    assert trainer.history[1]["loss"] == pytest.approx(long_pass.item(), abs=1e-6)
    assert abs(fresh.item() - long_pass.item()) > 1e-4   # the carried state mattered


def test_resume_gives_the_same_next_losses(tmp_path):
    ids = _ids()
    full = _trainer(tmp_path / "full", _model(dropout=0.3), ids)
    full.fit()
    first = _trainer(tmp_path / "split", _model(dropout=0.3), ids)
    first.fit(stop_at_step=5)
    torch.manual_seed(999)  # the resumed run must restore the RNG, not rely on it
    second = _trainer(tmp_path / "split", _model(dropout=0.3, seed=7), ids)
    assert second.resume()
    assert second.step == 5 and second.carry is not None
    second.fit()
    expected = [h["loss"] for h in full.history[5:]]
    assert [h["loss"] for h in second.history] == pytest.approx(expected, abs=1e-7)
    rows = _rows(tmp_path / "split" / "metrics.jsonl")
    assert [r["step"] for r in rows if r["split"] == "valid"] == [4, 8]


def test_optimizer_state_round_trips_through_flat_tensors():
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model.loss(*StreamBatches(_ids(), 2, 4).batch(0))[0].backward()
    opt.step()
    tensors, meta = optimizer_state_to_flat(opt)
    json.dumps(meta)
    opt2 = torch.optim.AdamW(_model().parameters(), lr=0.5)
    optimizer_state_from_flat(opt2, tensors, json.loads(json.dumps(meta)))
    assert opt2.param_groups[0]["lr"] == 0.1
    for a, b in zip(opt.state.values(), opt2.state.values(), strict=True):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"]) and torch.equal(a["step"], b["step"])


def test_clipping_fractions_are_logged(tmp_path):
    trainer = _trainer(tmp_path, _model(), _ids(), clip_norm=1e-12, clip_value=1e-9, max_steps=4)
    trainer.fit()
    row = _rows(tmp_path / "metrics.jsonl")[0]
    assert row["split"] == "train" and row["clip_norm_fraction"] == 1.0
    assert row["clip_value_fraction"] > 0.5


def test_early_stopping_and_checkpoints(tmp_path):
    trainer = _trainer(tmp_path, _model(), _ids(), lr=0.0, max_steps=100, eval_every=2,
                       patience=2)
    summary = trainer.fit()
    assert summary["stop_reason"] == "early_stopping" and summary["step"] == 6
    assert {p.name for p in tmp_path.iterdir()} == {"best", "last", "metrics.jsonl", "loss.png"}
    assert json.loads((tmp_path / "best" / "config.json").read_text())["step"] == 2
    assert json.loads((tmp_path / "last" / "trainer.json").read_text())["step"] == 6


def test_lr_schedule_warmup_then_cosine_to_floor():
    cfg = TrainConfig(warmup_steps=4, min_lr_ratio=0.1)
    assert lr_factor(cfg, 0, 0.0) == 0.25
    assert lr_factor(cfg, 10, 0.0) == 1.0
    assert lr_factor(cfg, 10, 0.5) == pytest.approx(0.55)
    assert lr_factor(cfg, 10, 1.0) == pytest.approx(0.1)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['hiden_size'\]"):
        config_from_dict(LMConfig, {"hiden_size": 3})
    with pytest.raises(ValueError, match="optimizer must be one of"):
        config_from_dict(LMConfig, {"optimizer": "adagrad"})
    with pytest.raises(ValueError, match="tie_weights needs embedding_size == hidden_size"):
        config_from_dict(LMConfig, {"tie_weights": True})
    with pytest.raises(ValueError, match="no stopping rule"):
        TrainConfig(max_steps=0)


def test_main_tiny_config_end_to_end(tmp_path, capsys):
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    cfg = config_from_dict(LMConfig, {**TINY, "data": str(data), "out": str(tmp_path / "run"),
                                      "max_steps": 30, "eval_every": 10, "lr": 1e-2})
    summary = main(cfg)
    rows = _rows(tmp_path / "run" / "metrics.jsonl")
    valid = [r for r in rows if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [10, 20, 30]
    assert valid[-1]["loss"] < valid[0]["loss"] < math.log(summary["vocab_size"])
    assert valid[0]["bpc"] == pytest.approx(valid[0]["loss"] / math.log(2))
    assert len(summary["sample"]) == 20 and set(summary["sample"]) <= set(TEXT)
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert saved["run_config"]["hidden_size"] == 16 and saved["vocab"]["level"] == "char"
    assert "--- sample" in capsys.readouterr().out


def test_main_word_level_gru(tmp_path):
    data = tmp_path / "words.txt"
    data.write_text("the cat sat on the mat .\nthe dog sat on the log .\n" * 30)
    cfg = config_from_dict(LMConfig, {**TINY, "data": str(data), "out": str(tmp_path / "run"),
                                      "level": "word", "cell": "gru", "num_layers": 2,
                                      "dropout": 0.1, "max_steps": 40, "eval_every": 20,
                                      "lr": 2e-2, "sample_length": 12})
    summary = main(cfg, log=lambda s: None)
    assert summary["vocab_size"] == 10  # <unk> + 9 distinct words and symbols
    assert summary["best_val_loss"] < 0.7 * math.log(10)
    words = summary["sample"].split()
    assert len(words) >= 10 and set(words) <= {"the", "cat", "sat", "on", "mat", ".", "dog", "log"}


def test_interrupt_saves_last_and_a_half_swapped_checkpoint_is_still_found(tmp_path):
    from rnnkit.train.checkpoint import find_checkpoint

    calls = []

    def interrupting(model, batch, state):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _loss_fn(model, batch, state)

    trainer = _trainer(tmp_path, _model(), _ids())
    trainer.loss_fn = interrupting
    assert trainer.fit()["stop_reason"] == "interrupted"
    meta = json.loads((tmp_path / "last" / "trainer.json").read_text())
    assert meta["step"] == 2 and meta["index"] == 2
    # a crash between the two renames of save_checkpoint leaves the old copy at last.old
    (tmp_path / "last").rename(tmp_path / "last.old")
    assert find_checkpoint(tmp_path, prefer="last") == tmp_path / "last.old"
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("app", ["lm", "seq2seq", "classify", "music"])
def test_every_numeric_field_of_every_app_config_refuses_negatives_and_nan(app):
    import dataclasses
    import importlib

    module = importlib.import_module(f"rnnkit.train.{app}")
    cls = next(getattr(module, n) for n in dir(module) if n.endswith("Config")
               and n != "TrainConfig")
    checked = 0
    for f in dataclasses.fields(cls):
        default = f.default
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        bad = [-1] + ([float("nan"), float("inf")] if isinstance(default, float) else [])
        for value in bad:
            with pytest.raises(ValueError, match=f"^{f.name} must be"):
                config_from_dict(cls, {f.name: value})
        checked += 1
    assert checked >= 20
