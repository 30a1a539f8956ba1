"""Music you can hear: continue an opening or a chord with a trained music model, write MIDI
and a piano-roll picture (the library side of `rnnkit generate`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.midi import PIANO_OFFSET, write_midi
from rnnkit.data.music import DEFAULT_DATA_DIR, NUM_KEYS, load_piano_rolls, resolve_music_data
from rnnkit.models.conditional_roll import ConditionalPianoRoll
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.music import MusicModel, load_music_model

__all__ = ["parse_chord", "note_name", "chord_roll", "opening_of_test_piece", "continue_roll",
           "plot_roll", "generate_piece"]

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d+)?$")


def parse_chord(text: str, octave: int = 4) -> list[int]:
    """MIDI note numbers of a chord written as note names joined by '-': `C-E-G`,
    `D4-F#4-A4`, `Bb2-D3-F3`. A name without an octave takes `octave`; C4 is MIDI 60 (middle
    C), so `C-E-G` is [60, 64, 67].

    Example:
        >>> parse_chord("C-E-G"), parse_chord("A0-Bb3-C8")
        ([60, 64, 67], [21, 58, 108])
    """
    notes = []
    for name in text.split("-") if text else []:
        m = _NOTE.match(name.strip())
        if not m:
            raise ValueError(f"chord {text!r}: {name!r} is not a note name; expected a letter "
                             f"A-G, optionally # or b, optionally an octave (C, F#3, Bb4), "
                             f"joined by '-' as in C-E-G")
        letter, accidental, octv = m.groups()
        pc = _PITCH_CLASS[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]
        notes.append(12 * ((octave if octv is None else int(octv)) + 1) + pc)
    if not notes:
        raise ValueError(f"chord {text!r} names no notes; expected e.g. C-E-G")
    return notes


def note_name(note: int) -> str:
    """The name of MIDI note `note` with sharps and its octave (60 -> 'C4', 61 -> 'C#4').

    Example:
        >>> [note_name(n) for n in (21, 60, 61, 108)]
        ['A0', 'C4', 'C#4', 'C8']
    """
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    return f"{names[note % 12]}{note // 12 - 1}"


def chord_roll(notes: list[int], num_keys: int = NUM_KEYS) -> Tensor:
    """A one-frame roll (1, num_keys) sounding the MIDI `notes` (88-key roll: 21..108)."""
    roll = torch.zeros(1, num_keys)
    for note in notes:
        key = note - PIANO_OFFSET
        if not 0 <= key < num_keys:
            raise ValueError(f"note {note} is off the piano: an 88-key roll holds MIDI notes "
                             f"{PIANO_OFFSET}..{PIANO_OFFSET + num_keys - 1} (A0..C8)")
        roll[0, key] = 1
    return roll


def opening_of_test_piece(data: str, data_dir: str, piece: int, steps: int,
                          style: str | None = None) -> Tensor:
    """The first `steps` frames of test piece number `piece` (T, 88), from the data set named
    `style` among those of `data` (the only one when `data` names one)."""
    sources = resolve_music_data(data, data_dir)
    if style is not None:
        sources = [(n, p) for n, p in sources if n == style]
        if not sources:
            raise ValueError(f"style {style!r} is not one of the run's data sets "
                             f"{[n for n, _ in resolve_music_data(data, data_dir)]}")
    elif len(sources) > 1:
        raise ValueError(f"the run trained on {[n for n, _ in sources]}: pass --style to say "
                         f"which data set the opening comes from")
    pieces = load_piano_rolls(sources[0][1], "test")
    if not 0 <= piece < len(pieces):
        raise ValueError(f"--piece must be in 0..{len(pieces) - 1} (test pieces of "
                         f"{sources[0][1].name}), got {piece}")
    if steps < 1:
        raise ValueError(f"--prompt-steps must be >= 1, got {steps}")
    return pieces[piece][:steps]


def continue_roll(model: MusicModel, prime: Tensor, steps: int, temperature: float = 1.0,
                  seed: int = 0, style: str | None = None) -> Tensor:
    """`steps` frames sampled after `prime` (T, 88), each key from its Bernoulli
    (temperature 0: keys with p > 0.5), fed back; the style steers a conditional model."""
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {temperature}")
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, ConditionalPianoRoll):
        if style is None:
            raise ValueError(f"this model is conditional: pass --style, one of {model.styles}")
        return model.generate(prime, steps, temperature, g, v=model.one_hot(style))
    if style is not None:
        raise ValueError("--style needs a conditional model (rnnkit train music --conditional)")
    return model.generate(prime, steps, temperature, g)


def plot_roll(roll: Tensor, path: Path, prompt_frames: int = 0, title: str = "",
              force: bool = False) -> Path:
    """A PNG of `roll` (T, 88): time across, MIDI notes up, the prompt shaded; atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if path.exists() and not force:
        raise FileExistsError(f"{str(path)!r} exists; pass --force to replace it")
    used = roll.nonzero()[:, 1]
    lo = int(used.min()) - 2 if len(used) else 0
    hi = int(used.max()) + 3 if len(used) else roll.shape[1]
    lo, hi = max(0, lo), min(roll.shape[1], hi)
    fig = Figure(figsize=(max(6.0, min(16.0, roll.shape[0] / 8)), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(roll[:, lo:hi].T.numpy(), aspect="auto", origin="lower", cmap="Greys",
              interpolation="nearest", extent=(0, roll.shape[0], lo + PIANO_OFFSET - 0.5,
                                               hi + PIANO_OFFSET - 0.5))
    if prompt_frames:
        ax.axvspan(0, prompt_frames, color="tab:blue", alpha=0.12, label="prompt")
        ax.axvline(prompt_frames, color="tab:blue", lw=1)
        ax.legend(loc="upper right")
    cs = [n for n in range(lo + PIANO_OFFSET, hi + PIANO_OFFSET) if n % 12 == 0]
    ax.set_yticks(cs, [f"C{n // 12 - 1}" for n in cs])
    ax.set_xlabel("frame (quarter note)")
    ax.set_ylabel("MIDI note")
    ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def generate_piece(run: str, out: str, *, prompt_steps: int = 0, chord: str | None = None,
                   piece: int = 0, data: str | None = None, steps: int = 64,
                   temperature: float = 1.0, seed: int = 0, style: str | None = None,
                   bpm: float = 100.0, force: bool = False, checkpoint: str = "best"
                   ) -> dict[str, Any]:
    """Continue an opening (the first `prompt_steps` frames of a test piece) or a chord with
    the run's model; write the MIDI file `out` (prompt + continuation) and a PNG beside it."""
    if (prompt_steps > 0) == (chord is not None):
        raise ValueError("give exactly one start: --prompt-steps N (an opening from a test "
                         "piece) or --chord NOTES (e.g. C-E-G)")
    out_path = Path(out)
    png = out_path.with_suffix(".png")
    for p in (out_path, png):
        if p.exists() and not force:
            raise FileExistsError(f"{str(p)!r} exists; pass --force to replace it")
    model = load_music_model(run, checkpoint)
    if chord is not None:
        prime = chord_roll(parse_chord(chord))
    else:
        meta = ckpt.load_checkpoint_meta(ckpt.find_checkpoint(run, checkpoint))
        cfg = meta.get("run_config", {})
        prime = opening_of_test_piece(data or cfg.get("data", ""),
                                      cfg.get("data_dir", DEFAULT_DATA_DIR), piece,
                                      prompt_steps, style)
    frames = continue_roll(model, prime, steps, temperature, seed, style)
    roll = torch.cat([prime, frames])  # (P + S, 88)
    write_midi(out_path, roll, force=force, bpm=bpm)
    title = f"{out_path.name}: {len(prime)} prompt + {steps} generated frames" + \
        (f", style {style}" if style else "")
    plot_roll(roll, png, len(prime), title, force=True)
    return {"midi": str(out_path), "png": str(png), "prompt_frames": len(prime),
            "generated_frames": steps, "notes_per_frame": float(frames.sum(1).mean())}
