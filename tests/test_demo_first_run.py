"""A first run that trains: the language-model demo (and `rnnkit demo`) build or load the fused
engine before the time budget's clock starts, with a progress line before and after, so a
fresh machine's build is not taken out of the training time."""

from __future__ import annotations

import re
import time

import pytest

import rnnkit.engine
from rnnkit.cli import demo
from rnnkit.models import LanguageModel
from rnnkit.train.lm import TINY, LMConfig, main, prepare_engine

BUILD_S = 4.0  # what the first engine load takes here, standing in for a fresh machine's build
TEXT = "def add(a, b):\n    return a + b\n\n" * 60


@pytest.fixture
def slow_first_load(monkeypatch, ext):
    """The engine's loader as on a fresh machine: the first call takes BUILD_S seconds (the
    build), later ones return at once. The layers reach the engine through the same function,
    so a run that did not load it up front pays BUILD_S inside its first training step."""
    real, calls = rnnkit.engine.load_extension, []

    def load(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            time.sleep(BUILD_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(rnnkit.engine, "load_extension", load)
    return calls


def test_lm_budget_counts_training_only(tmp_path, monkeypatch, slow_first_load):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "empty-cache"))  # nothing built there
    data = tmp_path / "code.py"
    data.write_text(TEXT)
    budget_min = 0.02  # 1.2 s: shorter than the build, so a build inside it leaves 1 step
    cfg = LMConfig(**{**TINY, "backend": "rnnkit", "data": str(data), "out": str(tmp_path / "run"),
                      "max_steps": 0, "time_budget": budget_min, "eval_every": 10_000,
                      "sample_length": 0})
    lines: list[str] = []
    summary = main(cfg, log=lines.append)

    building = next(i for i, s in enumerate(lines) if s.startswith(
        "engine: building the fused engine (once per machine"))
    ready = next(i for i, s in enumerate(lines) if s.startswith("engine ready in "))
    first_step = next(i for i, s in enumerate(lines) if s.lstrip().startswith("step "))
    assert building < ready < first_step, lines
    took = float(re.match(r"engine ready in ([\d.]+) s", lines[ready]).group(1))
    assert took >= BUILD_S
    assert summary["stop_reason"] == "time_budget"
    # The budget's clock ran for training alone: it stopped within the budget plus a step and
    # the final evaluation, well short of the build's seconds, after many steps.
    assert budget_min * 60 <= summary["elapsed_s"] < BUILD_S, summary
    assert summary["step"] >= 5, summary


def test_lm_says_loading_when_the_engine_is_cached(ext):
    lines: list[str] = []
    took = prepare_engine(LanguageModel(7, 3, 4, 1, backend="rnnkit"), lines.append)
    assert lines[0] == "engine: loading the fused engine from the cache ..."
    assert lines[1] == f"engine ready in {took:.1f} s"


def test_no_engine_line_for_a_model_that_does_not_use_it(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(rnnkit.engine, "load_extension", lambda **kw: calls.append(1))
    lines: list[str] = []
    assert prepare_engine(LanguageModel(7, 3, 4, 1, backend="torch"), lines.append) == 0.0
    assert lines == [] and calls == []


def test_a_failed_build_says_so_and_names_the_fallback(monkeypatch):
    monkeypatch.setattr(rnnkit.engine, "load_extension", lambda **kw: None)
    monkeypatch.setattr(rnnkit.engine, "build_error", lambda: "no C++ compiler found")
    lines: list[str] = []
    prepare_engine(LanguageModel(7, 3, 4, 1, backend="rnnkit"), lines.append)
    assert re.fullmatch(r"engine: unavailable after [\d.]+ s \(no C\+\+ compiler found\); "
                        r"training on the reference path", lines[-1]), lines


def test_adding_demo_times_training_only(capsys, slow_first_load):
    demo.run(length=5, hidden_size=4, steps=2, batch=4, log_every=1)
    out = capsys.readouterr().out.splitlines()
    ready = next(i for i, s in enumerate(out) if s.startswith("engine ready in "))
    steps = [i for i, s in enumerate(out) if s.startswith("step ")]
    assert steps and ready < steps[0], out
    seconds = [float(re.search(r"\(([\d.]+)s\)$", out[i]).group(1)) for i in steps]
    assert max(seconds) < BUILD_S, out
