"""Music you can hear: chords by name, the style-conditioned model, `rnnkit generate` and
`rnnkit eval` on music runs, end to end on the fused engine with tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data.midi import read_midi
from rnnkit.models.conditional_roll import ConditionalPianoRoll
from rnnkit.train.config import config_from_dict
from rnnkit.train.music import TINY, MusicConfig, load_music_model, main
from rnnkit.train.music_generate import chord_roll, note_name, parse_chord


def _mat(path: Path, second_key: int) -> Path:
    """Pieces alternating key 40 (MIDI 61) with `second_key`: the style decides what follows 40."""
    scipy_io = pytest.importorskip("scipy.io")
    import numpy as np

    def piece(T):
        roll = np.zeros((T, 88), dtype=np.uint8)
        roll[::2, 40] = 1
        roll[1::2, second_key] = 1
        return roll

    def cell(lengths):
        arr = np.empty((1, len(lengths)), dtype=object)
        for i, n in enumerate(lengths):
            arr[0, i] = piece(n)
        return arr

    scipy_io.savemat(str(path), {"traindata": cell([12, 11, 10, 9, 12, 8]),
                                 "validdata": cell([10, 9]), "testdata": cell([11, 10])})
    return path


def test_chord_names_are_midi_notes_worked_out_by_hand():
    # Middle C is MIDI 60 (C4); each octave is 12 semitones; A0 (21) and C8 (108) end the piano.
    assert parse_chord("C-E-G") == [60, 64, 67]
    assert parse_chord("D3-F#3-A3") == [50, 54, 57]
    assert parse_chord("Bb2-eb5") == [46, 75]
    assert parse_chord("C", octave=2) == [36]
    assert parse_chord("A0-C8") == [21, 108]
    assert [parse_chord(note_name(n)) for n in range(21, 109)] == [[n] for n in range(21, 109)]
    roll = chord_roll([21, 60, 108])
    assert roll.nonzero()[:, 1].tolist() == [0, 39, 87]  # column = MIDI note - 21
    for bad, msg in [("H-E", "not a note name"), ("C--E", "not a note name"),
                     ("", "names no notes"), ("C#4x", "not a note name")]:
        with pytest.raises(ValueError, match=msg):
            parse_chord(bad)
    with pytest.raises(ValueError, match="off the piano"):
        chord_roll(parse_chord("G#0"))


def test_conditional_model_fused_equals_reference_and_streams():
    torch.manual_seed(0)
    fused = ConditionalPianoRoll(2, num_keys=88, hidden_size=5, cell="gru", engine="fused")
    ref = ConditionalPianoRoll(2, num_keys=88, hidden_size=5, cell="gru", engine="reference")
    ref.load_state_dict(fused.state_dict())
    x = torch.bernoulli(torch.full((4, 3, 88), 0.1))
    y = torch.bernoulli(torch.full((4, 3, 88), 0.1))
    v, lengths = fused.one_hot(torch.tensor([0, 1, 1])), torch.tensor([4, 2, 3])
    losses = [m.loss(x, y, lengths, v=v) for m in (fused, ref)]
    torch.testing.assert_close(losses[0], losses[1])
    grads = [torch.autograd.grad(loss, list(m.parameters()))
             for loss, m in zip(losses, (fused, ref), strict=True)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        whole = fused(x, v)
        state, steps = None, []
        for t in range(4):
            logits, state = fused.step(x[t], v, state)
            steps.append(logits)
        torch.testing.assert_close(torch.stack(steps), whole)
        other = fused(x, fused.one_hot(torch.tensor([1, 0, 0])))
    assert not torch.allclose(whole, other)  # the style reaches the outputs
    with pytest.raises(ValueError, match="unknown style"):
        fused.one_hot("jazz")
    with pytest.raises(ValueError, match="0..1"):
        fused.one_hot(torch.tensor([2]))


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cond")
    a, b = _mat(tmp / "Alpha.mat", 44), _mat(tmp / "Beta.mat", 47)
    cfg = config_from_dict(MusicConfig, {
        **TINY, "data": f"{a},{b}", "conditional": True, "out": str(tmp / "run"),
        "max_steps": 150, "eval_every": 50, "lr": 5e-2, "hidden_size": 32, "cell": "gru",
        "batch_size": 6, "schedule": "constant", "dropout": 0.0})
    return tmp, main(cfg, log=lambda _: None)


def test_conditional_training_reports_each_style(conditional_run):
    tmp, summary = conditional_run
    assert set(summary) >= {"test_nll", "test_nll_alpha", "test_nll_beta"}
    # Knowing the style, every frame is certain: far below the 1 nat per frame that a model
    # blind to the style pays for each frame after key 40 (two equally likely keys).
    assert summary["test_nll_alpha"] < 0.3 and summary["test_nll_beta"] < 0.3
    model = load_music_model(tmp / "run")
    assert isinstance(model, ConditionalPianoRoll) and model.styles == ["alpha", "beta"]


def test_generate_follows_the_style_and_writes_midi(conditional_run, capsys):
    tmp, _ = conditional_run
    # One chord, key 40 only (MIDI 61 = C#4): the style alone says which key comes next.
    for style, second in (("alpha", 44), ("beta", 47)):
        out = tmp / f"{style}.mid"
        assert cli(["generate", str(tmp / "run"), "--out", str(out), "--chord", "C#4",
                    "--style", style, "--steps", "4", "--temperature", "0"]) == 0
        roll = read_midi(out)
        expected = torch.zeros(5, 88)
        expected[0::2, 40] = 1
        expected[1::2, second] = 1
        assert torch.equal(roll, expected)
        assert read_midi(out, num_keys=128).nonzero()[0].tolist() == [0, 61]  # MIDI 61
        assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    args = ["generate", str(tmp / "run"), "--out", str(tmp / "alpha.mid"), "--style", "beta",
            "--prompt-steps", "3", "--data", str(tmp / "Beta.mat"), "--seed", "3"]
    assert cli(args) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli([*args, "--force"]) == 0
    opening = torch.zeros(3, 88)  # the first 3 frames of Beta's first test piece
    opening[[0, 2], 40] = 1
    opening[1, 47] = 1
    assert torch.equal(read_midi(tmp / "alpha.mid")[:3], opening)
    assert cli(["generate", str(tmp / "run"), "--out", str(tmp / "x.mid"), "--chord", "C"]) == 2
    assert "pass --style" in capsys.readouterr().err
    # After a frame of key 40 alone, each style names its own next note (44 = F4, 47 = G#4).
    assert cli(["predict", str(tmp / "run"), str(tmp / "beta.mid"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    last = read_midi(tmp / "beta.mid")[-1].nonzero().flatten().tolist()
    assert last == [40]  # beta.mid ends on key 40 (5 frames from C#4)
    assert [(r["style"], r["notes"][0][0]) for r in rows] == [("alpha", "F4"), ("beta", "G#4")]


def test_eval_scores_music_under_each_style(conditional_run, capsys):
    tmp, summary = conditional_run
    assert cli(["eval", str(tmp / "run"), "--test", str(tmp / "Beta.mat"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["loss"] == pytest.approx(summary["test_nll_beta"], rel=1e-5)
    assert scores["nll_alpha"] > scores["nll_beta"] + 1.0  # the wrong style costs
    assert scores["accuracy"] == 1.0


def test_plain_run_generates_from_a_test_opening_and_evaluates(tmp_path, capsys):
    data = _mat(tmp_path / "Alpha.mat", 44)
    cfg = config_from_dict(MusicConfig, {**TINY, "data": str(data), "out": str(tmp_path / "r")})
    summary = main(cfg, log=lambda _: None)
    out = tmp_path / "p.mid"
    assert cli(["generate", str(tmp_path / "r"), "--out", str(out), "--prompt-steps", "2",
                "--steps", "5", "--seed", "1"]) == 0
    roll = read_midi(out)
    assert roll.shape[0] == 7 and roll[0, 40] == 1 and roll[1, 44] == 1
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "r"), "--test", str(data), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["loss"] == pytest.approx(summary["test_nll"], rel=1e-5)
    assert cli(["generate", str(tmp_path / "r"), "--out", str(out), "--chord", "C",
                "--style", "jsb", "--force"]) == 2
    assert "needs a conditional model" in capsys.readouterr().err
