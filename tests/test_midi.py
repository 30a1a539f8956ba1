"""MIDI files <-> piano rolls: VLQ by hand, exact round trips, hand-built files, bad files."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.midi import (
    MidiError,
    decode_vlq,
    encode_vlq,
    midi_to_roll,
    read_midi,
    roll_to_midi,
    write_midi,
)

# Variable-length quantities worked out by hand: split the value into 7-bit groups, most
# significant first, and set bit 7 on every byte but the last. 0x80 = 1 0000000 -> groups
# 1, 0 -> 0x81 0x00; 0x3FFF = 1111111 1111111 -> 0xFF 0x7F; 0x4000 = 1 0000000 0000000 ->
# 0x81 0x80 0x00; 0x0FFFFFFF = four groups of 1111111 -> FF FF FF 7F.
VLQ_BY_HAND = [(0, "00"), (1, "01"), (0x7F, "7f"), (0x80, "8100"), (0x81, "8101"),
               (0x2000, "c000"), (0x3FFF, "ff7f"), (0x4000, "818000"),
               (0x1FFFFF, "ffff7f"), (0x200000, "81808000"), (0x0FFFFFFF, "ffffff7f")]


@pytest.mark.parametrize("value, hexed", VLQ_BY_HAND)
def test_vlq_boundaries_match_hand_worked_bytes(value, hexed):
    assert encode_vlq(value).hex() == hexed
    data = b"\x99" + bytes.fromhex(hexed) + b"\x42"
    assert decode_vlq(data, 1) == (value, 1 + len(hexed) // 2)


@pytest.mark.parametrize("bad", [-1, 0x10000000, 1.5])
def test_vlq_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="variable-length quantity holds"):
        encode_vlq(bad)


def test_vlq_decoding_errors():
    with pytest.raises(MidiError, match="runs past 4 bytes"):
        decode_vlq(bytes.fromhex("8080808000"), 0)
    with pytest.raises(MidiError, match="truncated"):
        decode_vlq(bytes.fromhex("81"), 0)


@pytest.mark.parametrize("keys, seed", [(88, 0), (88, 1), (128, 2)])
def test_roll_round_trips_exactly(keys, seed):
    g = torch.Generator().manual_seed(seed)
    roll = torch.bernoulli(torch.full((40, keys), 0.08), generator=g)
    roll[:, 0] = 1      # the lowest column held through the whole piece
    roll[-1, -1] = 1    # the highest column in the last frame only
    roll[5:9] = 0       # a rest in the middle
    roll[-4:-1] = 0
    back = midi_to_roll(roll_to_midi(roll, bpm=90, ticks_per_frame=96), num_keys=keys)
    assert torch.equal(back, roll)
    silent_end = roll.clone()
    silent_end[-1] = 0  # a silent last frame survives through the end-of-track time
    assert torch.equal(midi_to_roll(roll_to_midi(silent_end), num_keys=keys), silent_end)


def test_written_bytes_are_the_hand_built_file():
    # Middle C (MIDI 60, column 39 of an 88-key roll) for two frames, then E4 (64) for one.
    roll = torch.zeros(3, 88)
    roll[0:2, 60 - 21] = 1
    roll[2, 64 - 21] = 1
    track = bytes.fromhex(
        "00 ff5103 0927c0"     # delta 0, tempo 600000 us per quarter (100 bpm)
        "00 90 3c 50"          # delta 0, note on C4 velocity 80
        "8740 80 3c 00"        # delta 960 (two frames of 480), note off C4
        "00 90 40 50"          # delta 0, note on E4
        "8360 80 40 00"        # delta 480, note off E4
        "00 ff2f00")           # end of track at tick 1440
    expected = (b"MThd" + bytes.fromhex("00000006 0000 0001 01e0") + b"MTrk" +
                len(track).to_bytes(4, "big") + track)
    assert roll_to_midi(roll) == expected


def test_reads_format_1_running_status_and_velocity_zero_note_off():
    # Track 1: tempo only. Track 2: A0 (MIDI 21) on at tick 0; running status note on
    # C8 (108) at tick 100; A0 off by velocity 0 at tick 200; C8 off by 0x80 at tick 300;
    # a program change and a controller, which are skipped.
    t1 = bytes.fromhex("00 ff5103 07a120 00 ff2f00")
    t2 = bytes.fromhex("00 c0 05  00 b0 07 64  00 90 15 40  64 6c 40  64 15 00  64 80 6c 00"
                       "00 ff2f00")
    data = (b"MThd" + bytes.fromhex("00000006 0001 0002 0064") +
            b"MTrk" + len(t1).to_bytes(4, "big") + t1 + b"MTrk" + len(t2).to_bytes(4, "big") + t2)
    roll = midi_to_roll(data)  # one frame = 100 ticks (the file's division)
    expected = torch.zeros(3, 88)
    expected[0:2, 0] = 1
    expected[1:3, 87] = 1
    assert torch.equal(roll, expected)
    assert torch.equal(midi_to_roll(data, num_keys=128)[:, [21, 108]], expected[:, [0, 87]])


@pytest.mark.parametrize("data, message", [
    (b"RIFF" + bytes(20), "not a standard MIDI file"),
    (b"MThd" + bytes.fromhex("00000006 0002 0001 0060"), "format 2 is not supported"),
    (b"MThd" + bytes.fromhex("00000006 0000 0001 e728"), "SMPTE"),
    (b"MThd" + bytes.fromhex("00000006 0000 0002 0060") + b"MTrk" + bytes.fromhex("00000004")
     + bytes.fromhex("00ff2f00"), "announces 2 tracks, found 1"),
    (b"MThd" + bytes.fromhex("00000006 0000 0001 0060") + b"MTrk" + bytes.fromhex("00000010")
     + bytes.fromhex("00ff2f00"), "says 16 bytes"),
    (b"MThd" + bytes.fromhex("00000006 0000 0001 0060") + b"MTrk" + bytes.fromhex("00000004")
     + bytes.fromhex("00 3c 40 00"), "no status byte"),
    (b"MThd" + bytes.fromhex("00000006 0000 0001 0060") + b"MTrk" + bytes.fromhex("00000003")
     + bytes.fromhex("00 90 3c"), "truncated event"),
])
def test_malformed_files_give_clear_errors(tmp_path, data, message):
    path = tmp_path / "bad.mid"
    path.write_bytes(data)
    with pytest.raises(MidiError, match=message) as err:
        read_midi(path)
    assert "bad.mid" in str(err.value)


def test_notes_outside_the_roll_and_bad_rolls_are_refused():
    roll = torch.zeros(2, 128)
    roll[0, 10] = 1  # MIDI 10: below the piano's A0
    with pytest.raises(MidiError, match="note 10 lies outside"):
        midi_to_roll(roll_to_midi(roll), num_keys=88)
    with pytest.raises(ValueError, match="only 0 and 1"):
        roll_to_midi(torch.full((2, 88), 0.5))
    with pytest.raises(ValueError, match="88 .* or 128"):
        roll_to_midi(torch.zeros(2, 50))


def test_write_is_atomic_and_never_overwrites(tmp_path):
    roll = torch.zeros(4, 88)
    roll[:, 39] = 1
    path = write_midi(tmp_path / "a.mid", roll)
    with pytest.raises(FileExistsError, match="force"):
        write_midi(path, torch.zeros(4, 88))
    assert torch.equal(read_midi(path), roll)
    write_midi(path, torch.zeros(4, 88), force=True)
    assert not read_midi(path).any()
    assert [p.name for p in tmp_path.iterdir()] == ["a.mid"]  # no temporary left behind
