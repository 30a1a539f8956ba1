"""Tests for rnnkit.train.integrity: checksummed checkpoints, refused when damaged, everywhere."""

import contextlib
import hashlib
import json
import shutil

import pytest

from rnnkit.cli import main
from rnnkit.train.config import config_from_dict
from rnnkit.train.integrity import (
    MANIFEST_FILE,
    CheckpointError,
    UncheckedCheckpointWarning,
    verify_checkpoint,
)
from rnnkit.train.lm import TINY, LMConfig, load_language_model
from rnnkit.train.lm import main as lm_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("integrity")
    data = tmp / "text.txt"
    data.write_text("to be or not to be, that is the question.\n" * 30)
    cfg = config_from_dict(LMConfig, {**TINY, "data": str(data), "out": str(tmp / "run"),
                                      "sample_length": 0})
    lm_main(cfg, log=lambda s: None)
    return tmp / "run", data


@pytest.fixture()
def run(trained, tmp_path):
    src, data = trained
    shutil.copytree(src, tmp_path / "run")
    return tmp_path / "run", data


def _flip(path, offset_from_end=7):
    raw = bytearray(path.read_bytes())
    raw[-offset_from_end] ^= 0x01  # one bit of the tensor data (the header is at the start)
    path.write_bytes(bytes(raw))


def test_manifest_lists_every_file_with_its_sha256(run):
    where = run[0] / "best"
    manifest = json.loads((where / MANIFEST_FILE).read_text())
    names = {p.name for p in where.iterdir()} - {MANIFEST_FILE}
    assert set(manifest["files"]) == names == {"model.safetensors", "config.json",
                                               "trainer.safetensors", "trainer.json"}
    for name, entry in manifest["files"].items():
        raw = (where / name).read_bytes()
        assert entry == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert verify_checkpoint(where) is True


@pytest.mark.parametrize("damage", ["flip", "truncate", "edit", "delete"])
def test_damaged_checkpoints_are_refused_naming_the_file(run, damage):
    where = run[0] / "best"
    target = where / ("config.json" if damage == "edit" else "model.safetensors")
    if damage == "flip":
        _flip(target)
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "edit":
        target.write_text(target.read_text().replace('"hidden_size": 16', '"hidden_size": 17'))
    else:
        target.unlink()
    with pytest.raises(CheckpointError, match=f"{target.name}' (fails its sha256|has \\d+ "
                                              f"bytes, expected|is missing)"):
        load_language_model(run[0])  # never a silent fall-back to another checkpoint
    # Without a manifest (an old checkpoint) only a flipped bit goes unnoticed; the rest is
    # still a one-line CheckpointError.
    (where / "manifest.json").unlink()
    with pytest.warns(UncheckedCheckpointWarning), contextlib.nullcontext() if \
            damage == "flip" else pytest.raises(CheckpointError):
        load_language_model(run[0])


def test_every_command_that_loads_a_run_checks_it(run, capsys):
    run_dir, data = run
    _flip(run_dir / "best" / "model.safetensors")
    _flip(run_dir / "last" / "trainer.safetensors")
    assert main(["sample", str(run_dir), "--length", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best/model.safetensors' fails its sha256 check" in err
    assert main(["train", "lm", "--config", str(run_dir / "config.json"), "--out",
                 str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "fails its sha256 check" in err and "Traceback" not in err


def test_a_checkpoint_without_manifest_loads_with_a_warning(run):
    where = run[0] / "best"
    (where / MANIFEST_FILE).unlink()
    with pytest.warns(UncheckedCheckpointWarning, match="no manifest.json"):
        model, vocab, _ = load_language_model(run[0])
    assert len(vocab) == model.config()["vocab_size"]
    (where / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.warns(UncheckedCheckpointWarning), \
            pytest.raises(CheckpointError, match="model.safetensors' cannot be read"):
        load_language_model(run[0])


def test_unreadable_json_is_a_checkpoint_error(run):
    where = run[0] / "best"
    (where / MANIFEST_FILE).write_text("{ not json")
    with pytest.raises(CheckpointError, match="manifest.json' is not valid JSON"):
        load_language_model(run[0])
