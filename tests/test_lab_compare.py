"""`rnnkit lab compare`: several cells on one task, a table and one plot of the loss curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnkit.cli import main


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _table(out: Path) -> dict[str, list[str]]:
    lines = [line for line in (out / "results.md").read_text().splitlines()
             if line.startswith("| ") and not line.startswith("| run ")]
    return {cells[0]: cells for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_compare_two_cells_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["lab", "compare", "adding", "--preset", "tiny", "--cells", "rnn,gru",
                 "--max-steps", "4", "--eval-every", "2", "--out", str(out)]) == 0
    table = _table(out)
    assert sorted(table) == ["gru", "rnn"]
    for cell in ("rnn", "gru"):
        summary = _summary(out / cell)
        assert summary["cell"] == cell and summary["step"] == 4
        row = table[cell]
        assert row[1] == cell and row[2] == "1"  # clipping at the default norm
        assert float(row[3]) == pytest.approx(summary["final_valid_loss"], rel=1e-3)
        assert float(row[5]) == pytest.approx(summary["test_loss"], rel=1e-3)
        assert float(row[6]) == pytest.approx(summary["test_error_rate"], abs=1e-4)
        assert float(row[7]) == pytest.approx(summary["baseline"], abs=1e-4)
        assert row[8] == ("yes" if summary["test_loss"] < 0.01 else "no")
        assert row[9] == "4"
    # same seed, same budget: both runs saw the same validation sequences
    assert _summary(out / "rnn")["baseline"] == _summary(out / "gru")["baseline"]
    assert (out / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "== gru (2/2)" in capsys.readouterr().out


def test_compare_clipping_on_and_off(tmp_path):
    out = tmp_path / "clip"
    assert main(["lab", "compare", "copy", "--preset", "tiny", "--cells", "rnn",
                 "--clip", "0.5,0", "--lr", "0.05", "--out", str(out)]) == 0
    assert sorted(_table(out)) == ["rnn-clip0.5", "rnn-noclip"]
    configs = {name: json.loads((out / name / "config.json").read_text())
               for name in ("rnn-clip0.5", "rnn-noclip")}
    assert configs["rnn-clip0.5"]["clip_norm"] == 0.5 and configs["rnn-noclip"]["clip_norm"] == 0
    clipped = {name: [r["clip_norm_fraction"] for r in map(json.loads, (
        out / name / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]
        for name in configs}
    assert max(clipped["rnn-noclip"]) == 0 < max(clipped["rnn-clip0.5"])
    assert main(["lab", "compare", "copy", "--preset", "tiny", "--cells", "gru", "--no-clip",
                 "--out", str(tmp_path / "off")]) == 0
    assert _table(tmp_path / "off")["gru"][2] == "off"


def test_compare_refuses_an_existing_run_and_bad_lists(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["lab", "compare", "adding", "--preset", "tiny", "--cells", "gru", "--out", str(out)]
    assert main(args) == 0
    before = (out / "gru" / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "gru" / "metrics.jsonl").read_bytes() == before
    for bad, words in ((["--cells", "rnn,bogus"], "bogus"), (["--cells", "rnn,,gru"], "--cells"),
                       (["--clip", "fast"], "--clip"), (["--clip", "1,-1"], "clips")):
        assert main(["lab", "compare", "adding", "--preset", "tiny", *bad, "--out",
                     str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_a_diverging_run_is_reported_and_the_comparison_goes_on(tmp_path):
    out = tmp_path / "div"
    assert main(["lab", "compare", "adding", "--preset", "tiny", "--cells", "irnn,gru",
                 "--no-clip", "--optimizer", "sgd", "--lr", "1e6", "--max-bad-steps", "1",
                 "--out", str(out)]) == 0
    table = _table(out)
    assert table["irnn"][8] == "diverged" and table["gru"][8] == "diverged"
    assert int(table["irnn"][9]) < 6 and (out / "gru" / "config.json").exists()


def test_compare_tables_runs_trained_separately(tmp_path):
    """Runs trained one by one (in parallel, say) are tabled by `compare --resume`."""
    out = tmp_path / "sep"
    for cell in ("rnn", "gru"):
        assert main(["lab", "adding", "--preset", "tiny", "--cell", cell,
                     "--out", str(out / cell)]) == 0
    before = {c: _summary(out / c) for c in ("rnn", "gru")}
    assert main(["lab", "compare", "adding", "--preset", "tiny", "--cells", "rnn,gru",
                 "--resume", "--out", str(out)]) == 0
    table = _table(out)
    for cell in ("rnn", "gru"):
        assert table[cell][9] == "6"  # nothing trained again
        assert float(table[cell][10]) == pytest.approx(before[cell]["elapsed_s"], abs=0.5)
        assert float(table[cell][3]) == pytest.approx(before[cell]["final_valid_loss"],
                                                      rel=1e-3)
