"""The engine's tuning API (rnnkit.engine.tuning) and the engine's place in the layers of the code:
thresholds read, overridden and restored; bad names and values refused; a saved tuning applied
and a corrupt one ignored; the engine importing nothing above it; files of at most 400 lines."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from rnnkit.engine import _build, tuning

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _engine(ext):
    return ext


def test_current_lists_every_threshold_of_both_kernel_families():
    values = tuning.current()
    for name in ("team_batch", "team_macs", "split_rows", "pipeline_rows", "onednn",
                 "direction_team_batch", "direction_team_macs"):
        assert isinstance(values[name], int) and values[name] >= 0


def test_overridden_sets_and_restores_everything():
    before = tuning.current()
    with tuning.overridden(team_batch=3, direction_team_macs=7) as inside:
        assert inside["team_batch"] == 3 and inside["direction_team_macs"] == 7
        assert tuning.current() == inside
    assert tuning.current() == before


def test_overridden_restores_after_an_error_inside():
    before = tuning.current()
    with pytest.raises(KeyError), tuning.overridden(split_rows=9):
        raise KeyError("boom")
    assert tuning.current() == before


@pytest.mark.parametrize("values, message", [
    ({"team_batches": 1}, "unknown threshold 'team_batches'"),
    ({"team_batch": -1}, "team_batch must be >= 0, got -1"),
    ({"team_batch": 1.5}, "team_batch must be an int, got 1.5"),
])
def test_bad_overrides_are_refused_and_change_nothing(values, message):
    before = tuning.current()
    with pytest.raises(ValueError, match=message), tuning.overridden(split_rows=5, **values):
        pass
    assert tuning.current() == before


def test_a_saved_tuning_round_trips(tmp_path):
    path = tmp_path / "t.json"
    tuning.save({"team_macs": 123, "split_rows": 2}, [{"shape": [1, 2, 3]}], path)
    assert tuning.load_saved(path) == {"team_macs": 123, "split_rows": 2}
    assert json.loads(path.read_text())["machine"]["cores"] >= 1


@pytest.mark.parametrize("text", ["{not json", json.dumps({"thresholds": {"nope": 1}}),
                                  json.dumps({"thresholds": {"team_macs": -4}}),
                                  json.dumps({"other": 1})])
def test_a_corrupt_saved_tuning_is_ignored_with_a_warning(tmp_path, text):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.warns(RuntimeWarning, match="ignoring the saved tuning"):
        assert tuning.load_saved(path) is None


def test_install_applies_the_saved_tuning(tmp_path, monkeypatch, ext):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    before = tuning.current()
    tuning.save({"xp_chunk_rows": 77}, [])
    try:
        tuning.install(ext)
        assert tuning.current()["xp_chunk_rows"] == 77
        assert tuning.source() == str(tuning.saved_path())
    finally:
        ext.set_tuning(before)
        monkeypatch.setattr(tuning, "_source", "built-in")


def test_an_unknown_isa_is_refused(monkeypatch):
    monkeypatch.setenv("RNNKIT_ISA", "avx9000")
    with pytest.raises(ValueError, match=r"RNNKIT_ISA must be one of .* got 'avx9000'"):
        _build.load_extension()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_imports_nothing_above_it():
    for path in (ROOT / "rnnkit" / "engine").glob("*.py"):
        above = {n for n in _imports(path) if n == "rnnkit"
                 or (n.startswith("rnnkit.") and not n.startswith("rnnkit.engine"))}
        assert not above, f"{path.name} imports {sorted(above)}"


def test_source_files_have_at_most_400_lines():
    files = [*ROOT.glob("rnnkit/**/*.py"), *ROOT.glob("rnnkit/engine/csrc/**/*.[ch]*"),
             *ROOT.glob("bench/*.py")]
    long = {str(f.relative_to(ROOT)): n for f in files
            if (n := len(f.read_text().splitlines())) > 400}
    assert not long, long


def test_a_contended_machine_runs_the_step_loops_on_one_thread_and_stays_right(ext):
    """While contended (another process took a core from a team), every schedule falls back to
    its one-thread loop; the results still equal the reference, and the state ends with the
    back-off."""
    import torch
    from parity import assert_same, forward_backward

    import rnnkit as rk

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with tuning.overridden(team_batch=16, team_macs=0, contended_backoff_ms=60_000):
            ext.mark_contended()
            assert ext.contended()
            fused = rk.GRU(6, 40, num_layers=2, bidirectional=True, engine="fused")
            ref = rk.GRU(6, 40, num_layers=2, bidirectional=True, engine="reference")
            ref.load_state_dict(fused.state_dict())
            x = torch.randn(5, 3, 6, requires_grad=True)
            assert_same(forward_backward(fused, x), forward_backward(ref, x), torch.float32)
        with tuning.overridden(contended_backoff_ms=0):
            ext.mark_contended()
            assert not ext.contended()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("onednn", [0, 2], ids=["blas", "onednn"])
def test_a_contended_fork_join_loop_runs_on_one_thread_and_gives_the_threads_back(ext, onednn):
    """The step loops whose products fork over threads (batches above `small_batch`) go to one
    thread while contended; the results still equal the reference, and torch's thread count is
    the same after the call as before it."""
    import torch
    from parity import assert_same, forward_backward

    import rnnkit as rk

    if onednn and not ext.has_onednn():
        pytest.skip("this torch build has no oneDNN matrix products")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with tuning.overridden(small_batch=0, team_batch=0, split_rows=0, onednn=onednn,
                               contended_backoff_ms=60_000):
            ext.mark_contended()
            fused = rk.LSTM(6, 24, bidirectional=True, engine="fused")
            ref = rk.LSTM(6, 24, bidirectional=True, engine="reference")
            ref.load_state_dict(fused.state_dict())
            x = torch.randn(7, 9, 6, requires_grad=True)
            assert_same(forward_backward(fused, x), forward_backward(ref, x), torch.float32)
            assert torch.get_num_threads() == 2
        with tuning.overridden(contended_backoff_ms=0):
            ext.mark_contended()
    finally:
        torch.set_num_threads(before)


def test_tune_searches_the_candidates_and_the_command_saves_and_resets(tmp_path, monkeypatch):
    """`tune` on a tiny workload: every tuned value is one of its candidates and differs from
    the default; `rnnkit tune` saves the result where the engine reads it, `--reset` removes it."""
    import rnnkit as rk
    from rnnkit.benchmarks import tune as tune_module
    from rnnkit.cli import main

    monkeypatch.setattr(tune_module, "CANDIDATES", {"split_rows": [0, 4], "onednn": [0, 1]})
    monkeypatch.setattr(tune_module, "WORKLOAD",
                        [("gru", rk.GRU, {}, (2, 3, 8), True), ("lstm", rk.LSTM, {}, (1, 3, 8),
                                                                 False)])
    lines: list[str] = []
    result = tune_module.tune(reps=1, log=lines.append)
    defaults = tuning.defaults()
    for name, value in result["thresholds"].items():
        assert value in tune_module.CANDIDATES[name] and value != defaults[name]
    assert [row["call"] for row in result["calls"]] == ["gru", "lstm"]
    assert any(line.startswith("split_rows") for line in lines)

    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    before = tuning.current()
    try:
        assert main(["tune", "--reps", "1"]) == 0
        assert tuning.saved_path().exists() and tuning.load_saved() is not None
        assert main(["tune", "--reset"]) == 0
        assert not tuning.saved_path().exists()
    finally:
        _build.load_extension().set_tuning(before)
        monkeypatch.setattr(tuning, "_source", "built-in")
