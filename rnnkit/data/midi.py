"""Standard MIDI files <-> piano rolls: a small writer and reader (formats 0 and 1), no library.

A piano roll is a (T, K) 0/1 tensor, one row per frame (a quarter note in JSB Chorales and
Nottingham), one column per key. Column k sounds MIDI note `k + pitch_offset`: the polyphonic
data sets store the 88 piano keys A0..C8, MIDI notes 21..108, so their offset is 21
(`PIANO_OFFSET`); a 128-column roll holds MIDI notes 0..127 directly (offset 0).

The writer emits format 0 (one track): a tempo meta event, then for each key a note-on where
it starts sounding and a note-off where it stops, and an end-of-track event at the end of the
last frame so that silent frames at the end survive. A key held over several frames is one
note: a roll cannot tell a held key from a repeated one, so reading the file back gives the
same roll exactly. The reader accepts formats 0 and 1 (tracks merged), running status, note-on
with velocity 0 as note-off, and skips controllers, meta and sysex events.

File layout (all integers big-endian): `MThd` chunk (length 6: format, track count, ticks per
quarter note), then `MTrk` chunks of events, each event preceded by its delta time in ticks
as a variable-length quantity (7 bits per byte, most significant first, bit 7 set on every
byte but the last).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["MidiError", "encode_vlq", "decode_vlq", "roll_to_midi", "midi_to_roll",
           "write_midi", "read_midi", "PIANO_OFFSET", "pitch_offset_for"]

PIANO_OFFSET = 21  # column 0 of an 88-key roll is A0, MIDI note 21
MAX_VLQ = 0x0FFFFFFF  # four bytes of 7 bits: the largest delta time a MIDI file can hold
_TEMPO, _END_OF_TRACK = 0x51, 0x2F


class MidiError(ValueError):
    """A file or byte string that is not a well-formed standard MIDI file."""


def pitch_offset_for(num_keys: int) -> int:
    """The MIDI note of column 0: 21 for an 88-key piano roll, 0 for a 128-note roll."""
    if num_keys == 88:
        return PIANO_OFFSET
    if num_keys == 128:
        return 0
    raise ValueError(f"a piano roll has 88 (piano keys) or 128 (MIDI notes) columns, got "
                     f"{num_keys}; pass pitch_offset to place the columns yourself")


def encode_vlq(value: int) -> bytes:
    """`value` (0 <= value <= 0x0FFFFFFF) as a MIDI variable-length quantity.

    Example:
        >>> encode_vlq(0x80).hex()
        '8100'
    """
    if not isinstance(value, int) or not 0 <= value <= MAX_VLQ:
        raise ValueError(f"a MIDI variable-length quantity holds 0..{MAX_VLQ}, got {value!r}")
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))  # continuation bit on every byte but the last
        value >>= 7
    return bytes(reversed(groups))


def decode_vlq(data: bytes, pos: int, where: str = "MIDI data") -> tuple[int, int]:
    """The variable-length quantity starting at data[pos], and the position after it."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            raise MidiError(f"{where}: truncated variable-length quantity at byte {pos}")
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos + i + 1
    raise MidiError(f"{where}: variable-length quantity at byte {pos} runs past 4 bytes")


def _check_roll(roll: Tensor) -> Tensor:
    if not isinstance(roll, Tensor) or roll.dim() != 2:
        got = tuple(roll.shape) if isinstance(roll, Tensor) else type(roll).__name__
        raise ValueError(f"roll must be a (T, K) tensor of 0/1 frames, got {got}")
    on = roll != 0
    if not torch.equal(roll[on], torch.ones_like(roll[on])):
        raise ValueError("roll must hold only 0 and 1")
    return on


def roll_to_midi(roll: Tensor, pitch_offset: int | None = None, bpm: float = 100.0,
                 ticks_per_frame: int = 480, velocity: int = 80, channel: int = 0) -> bytes:
    """A format-0 standard MIDI file playing `roll` (T, K), one frame per quarter note.

    Args:
        roll: (T, K) 0/1 frames; column k is MIDI note k + pitch_offset.
        pitch_offset: MIDI note of column 0 (default: 21 for 88 columns, 0 for 128).
        bpm: tempo in quarter notes (frames) per minute.
        ticks_per_frame: the file's time division (ticks per quarter note).
    """
    on = _check_roll(roll)
    T, K = on.shape
    offset = pitch_offset_for(K) if pitch_offset is None else pitch_offset
    if offset < 0 or offset + K > 128:
        raise ValueError(f"columns {offset}..{offset + K - 1} are not all MIDI notes 0..127 "
                         f"(pitch_offset {offset}, {K} columns)")
    if not 1 <= ticks_per_frame <= 0x7FFF or not 1 <= velocity <= 127 or not 0 <= channel <= 15:
        raise ValueError(f"ticks_per_frame must be 1..32767, velocity 1..127, channel 0..15; "
                         f"got {ticks_per_frame}, {velocity}, {channel}")
    if not 0 < bpm <= 60e6:
        raise ValueError(f"bpm must be positive, got {bpm}")
    padded = torch.cat([torch.zeros(1, K, dtype=torch.bool), on,
                        torch.zeros(1, K, dtype=torch.bool)])  # (T + 2, K)
    change = padded[1:] != padded[:-1]  # (T + 1, K): where a key starts or stops
    events: list[tuple[int, int, int]] = []  # (frame, 0 off / 1 on, key): offs first
    for frame, key in change.nonzero().tolist():
        events.append((frame, int(padded[frame + 1, key]), key))
    events.sort()
    track = bytearray(encode_vlq(0))
    micros = round(60e6 / bpm)  # microseconds per quarter note
    track += bytes([0xFF, _TEMPO, 3]) + min(micros, 0xFFFFFF).to_bytes(3, "big")
    now = 0
    for frame, is_on, key in events:
        tick = frame * ticks_per_frame
        track += encode_vlq(tick - now)
        now = tick
        status = (0x90 if is_on else 0x80) | channel
        track += bytes([status, key + offset, velocity if is_on else 0])
    track += encode_vlq(T * ticks_per_frame - now) + bytes([0xFF, _END_OF_TRACK, 0])
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + \
        (1).to_bytes(2, "big") + ticks_per_frame.to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def _chunks(data: bytes, where: str) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(format, division, [(offset, track bytes)]) of a MIDI file's bytes."""
    if len(data) < 14 or data[:4] != b"MThd":
        raise MidiError(f"{where}: not a standard MIDI file (expected it to start with "
                        f"'MThd' and a 6-byte header, got {data[:4]!r}, {len(data)} bytes)")
    length = int.from_bytes(data[4:8], "big")
    if length < 6:
        raise MidiError(f"{where}: header chunk length is {length}; expected 6")
    fmt, ntracks, division = (int.from_bytes(data[i:i + 2], "big") for i in (8, 10, 12))
    if fmt not in (0, 1):
        raise MidiError(f"{where}: MIDI format {fmt} is not supported (expected 0 or 1)")
    if division & 0x8000 or division == 0:
        raise MidiError(f"{where}: time division {division:#06x} is not in ticks per quarter "
                        f"note (SMPTE timing is not supported)")
    pos, tracks = 8 + length, []
    while pos < len(data) and len(tracks) < ntracks:
        if pos + 8 > len(data):
            raise MidiError(f"{where}: truncated chunk header at byte {pos}")
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        if pos + 8 + size > len(data):
            raise MidiError(f"{where}: chunk {kind!r} at byte {pos} says {size} bytes but the "
                            f"file ends after {len(data) - pos - 8}")
        if kind == b"MTrk":
            tracks.append((pos + 8, data[pos + 8:pos + 8 + size]))
        pos += 8 + size
    if len(tracks) != ntracks:
        raise MidiError(f"{where}: header announces {ntracks} tracks, found {len(tracks)}")
    return fmt, division, tracks


def _notes(track: bytes, start: int, where: str) -> tuple[list[tuple[int, int, bool]], int]:
    """[(tick, note, on)] of one track in file order, and the tick of its last event."""
    pos, tick, status, out = 0, 0, 0, []
    while pos < len(track):
        delta, pos = decode_vlq(track, pos, where)
        tick += delta
        if pos >= len(track):
            raise MidiError(f"{where}: track ends after a delta time at byte {start + pos}")
        if track[pos] & 0x80:
            status, pos = track[pos], pos + 1
        elif not status:
            raise MidiError(f"{where}: data byte {track[pos]:#04x} at byte {start + pos} "
                            f"with no status byte before it")
        if status == 0xFF:  # meta event: type, length, data
            if pos >= len(track):
                raise MidiError(f"{where}: truncated meta event at byte {start + pos}")
            kind = track[pos]
            size, pos = decode_vlq(track, pos + 1, where)
            pos += size
            status = 0  # meta and sysex events cancel running status
            if kind == _END_OF_TRACK:
                break
        elif status in (0xF0, 0xF7):  # sysex: length, data
            size, pos = decode_vlq(track, pos, where)
            pos, status = pos + size, 0
        else:
            n = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
            if pos + n > len(track):
                raise MidiError(f"{where}: truncated event {status:#04x} at byte {start + pos}")
            if status & 0xF0 in (0x80, 0x90):
                note, vel = track[pos], track[pos + 1]
                if note > 127 or vel > 127:
                    raise MidiError(f"{where}: note event at byte {start + pos} has data "
                                    f"bytes {note}, {vel}; expected 0..127")
                out.append((tick, note, status & 0xF0 == 0x90 and vel > 0))
            pos += n
        if pos > len(track):
            raise MidiError(f"{where}: event runs past the end of its track (byte "
                            f"{start + pos})")
    return out, tick


def midi_to_roll(data: bytes, num_keys: int = 88, pitch_offset: int | None = None,
                 ticks_per_frame: int | None = None, where: str = "MIDI data") -> Tensor:
    """The (T, num_keys) float32 0/1 piano roll of a MIDI file's bytes.

    A frame lasts `ticks_per_frame` ticks (default: the file's ticks per quarter note); a key
    sounds in every frame that a note on it overlaps. T runs to the last event of any track
    (end of track included), rounded up to whole frames.
    """
    fmt, division, tracks = _chunks(data, where)
    tpf = division if ticks_per_frame is None else ticks_per_frame
    if tpf < 1:
        raise ValueError(f"ticks_per_frame must be >= 1, got {tpf}")
    offset = pitch_offset_for(num_keys) if pitch_offset is None else pitch_offset
    spans, end = [], 0  # (start tick, stop tick, note)
    for start, track in tracks:
        notes, last = _notes(track, start, where)
        end = max(end, last)
        sounding: dict[int, int] = {}
        for tick, note, on in notes:
            if note in sounding and (not on or tick > sounding[note]):
                spans.append((sounding.pop(note), tick, note))
            if on:
                sounding.setdefault(note, tick)
        spans += [(t0, last, note) for note, t0 in sounding.items()]  # never released
    frames = -(-end // tpf)
    roll = torch.zeros(frames, num_keys)
    for t0, t1, note in spans:
        key = note - offset
        if not 0 <= key < num_keys:
            raise MidiError(f"{where}: note {note} lies outside the roll's MIDI notes "
                            f"{offset}..{offset + num_keys - 1}")
        roll[t0 // tpf:-(-t1 // tpf), key] = 1
    return roll


def write_midi(path: str | os.PathLike, roll: Tensor, force: bool = False, **kwargs) -> Path:
    """Write `roll` to `path` as a MIDI file (roll_to_midi's options), atomically: a temporary
    file renamed into place. An existing file is refused unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{str(path)!r} exists; pass force=True (--force) to replace it")
    data = roll_to_midi(roll, **kwargs)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_midi(path: str | os.PathLike, num_keys: int = 88, **kwargs) -> Tensor:
    """The piano roll of the MIDI file at `path` (midi_to_roll's options); errors name it."""
    path = Path(path)
    return midi_to_roll(path.read_bytes(), num_keys, where=str(path), **kwargs)
