"""The diagnostics callback of lab runs: rows every N steps, the heat map, the vanishing
profile of a tanh RNN against an LSTM on the same task."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import rnnkit as rk
from rnnkit.lab.experiments import TINY, LabConfig, main
from rnnkit.lab.plots import plot_gradient_heatmap
from rnnkit.lab.recorder import DiagnosticsRecorder


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _config(tmp_path: Path, name: str, **changes) -> LabConfig:
    return replace(LabConfig(**TINY), out=str(tmp_path / name), **changes)


def test_rows_every_n_steps_and_the_pictures(tmp_path):
    cfg = _config(tmp_path, "gru", task="adding", cell="gru", diagnostics_every=2)
    main(cfg, log=lambda line: None)
    out = Path(cfg.out)
    rows = _rows(out / "diagnostics.jsonl")
    assert [r["step"] for r in rows] == [0, 2, 4, 6]
    for r in rows:
        assert len(r["grad_norm"]) == len(r["grad_share"]) == cfg.T
        assert sum(r["grad_share"]) == pytest.approx(1.0)
        assert set(r["gate_saturation"]) == {"reset", "update"}
        assert set(r["spectral_radius"]) == {"l0.r", "l0.z", "l0.n"}
    # the weights change between records, and so do the measurements
    assert rows[0]["grad_norm"] != rows[-1]["grad_norm"]
    assert rows[0]["spectral_radius"] != rows[-1]["spectral_radius"]
    for name in ("gradients.png", "gradient_profile.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recording_leaves_training_unchanged(tmp_path):
    """The probe puts gradients back and draws no random numbers: same losses either way."""
    def losses(name: str, every: int) -> list[tuple]:
        cfg = _config(tmp_path, name, task="copy", cell="lstm", diagnostics_every=every)
        main(cfg, log=lambda line: None)
        return [(r["step"], r["split"], r["loss"]) for r in _rows(Path(cfg.out) / "metrics.jsonl")]

    assert losses("with", 1) == losses("without", 0)
    assert not (tmp_path / "without" / "diagnostics.jsonl").exists()


def test_a_resumed_run_continues_the_rows(tmp_path):
    cfg = _config(tmp_path, "run", task="adding", cell="rnn", diagnostics_every=3,
                  eval_every=3, max_steps=3)
    main(cfg, log=lambda line: None)
    main(replace(cfg, max_steps=6, resume=True), log=lambda line: None)
    rows = _rows(Path(cfg.out) / "diagnostics.jsonl")
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert rows[0]["gate_saturation"] is None  # a plain RNN has no sigmoid gates


def test_probe_restores_the_parameter_gradients(tmp_path):
    torch.manual_seed(0)
    layer = rk.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    for p in layer.parameters():
        p.grad = torch.full_like(p, 7.0)
    rec = DiagnosticsRecorder(layer, x, lambda out: out[-1].pow(2).sum(), 1, tmp_path)
    row = rec.record(0)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in layer.parameters())
    assert row["probe_loss"] == pytest.approx(layer(x)[0][-1].pow(2).sum().item(), rel=1e-5)
    assert _rows(tmp_path / "diagnostics.jsonl") == [json.loads(json.dumps(row))]


def test_bad_arguments_are_named(tmp_path):
    layer = rk.RNN(3, 4)
    with pytest.raises(ValueError, match="every must be"):
        DiagnosticsRecorder(layer, torch.zeros(5, 2, 3), lambda out: out.sum(), 0, tmp_path)
    with pytest.raises(ValueError, match=r"x must be a \(T, B, I\) probe batch, got \(5, 3\)"):
        DiagnosticsRecorder(layer, torch.zeros(5, 3), lambda out: out.sum(), 1, tmp_path)


def test_heat_map_greys_out_gradients_that_are_exactly_zero(tmp_path):
    from matplotlib.image import imread

    def grey_pixels(norms: list[torch.Tensor]) -> int:
        img = imread(plot_gradient_heatmap([0, 5], norms, tmp_path / "heat.png"))[..., :3]
        return int((abs(img - 211 / 255) < 2 / 255).all(-1).sum())

    ones = torch.ones(8)
    frame = grey_pixels([ones, ones * 10])  # no zero: only the frame's own grey pixels
    assert grey_pixels([torch.cat([torch.zeros(4), ones[4:]]), ones]) > frame + 10_000


def test_vanishing_profile_tanh_rnn_against_lstm_on_the_adding_task(tmp_path):
    """Same task, probe batch and seed: ||dL/dh_0|| / ||dL/dh_T-1|| at initialisation."""
    ratio = {}
    for cell in ("rnn", "lstm"):
        cfg = _config(tmp_path, cell, task="adding", cell=cell, T=60, hidden_size=32,
                      diagnostics_every=1, max_steps=1, eval_every=1)
        main(cfg, log=lambda line: None)
        norms = _rows(Path(cfg.out) / "diagnostics.jsonl")[0]["grad_norm"]
        ratio[cell] = norms[0] / norms[-1]
    assert ratio["rnn"] < 1e-3 * ratio["lstm"]  # at least three orders of magnitude apart
