"""Tests for rnnkit.train.run_dir and checkpoint selection: runs are never lost or mixed."""

import json
import os
import subprocess
import sys

import pytest

from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import config_from_dict
from rnnkit.train.lm import TINY, LMConfig
from rnnkit.train.lm import main as lm_main
from rnnkit.train.run_dir import (
    LOCK_FILE,
    ResumeMismatchError,
    RunExistsError,
    RunInUseError,
    acquire_lock,
    clean_stale,
    open_run,
    pid_alive,
    release_lock,
    resume_mismatches,
)
from rnnkit.train.seq2seq import TINY as S2S_TINY
from rnnkit.train.seq2seq import Seq2SeqConfig
from rnnkit.train.seq2seq import main as s2s_main

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


def _lm(tmp_path, out="run", data_text=TEXT, **kw):
    data = tmp_path / f"data-{abs(hash(data_text)) % 10**6}.txt"
    data.write_text(data_text)
    return config_from_dict(LMConfig, {**TINY, "data": str(data), "out": str(tmp_path / out),
                                       "sample_length": 0, **kw})


def _quiet(s):
    return None


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_existing_run_is_refused_without_resume_or_overwrite(tmp_path):
    lm_main(_lm(tmp_path), log=_quiet)
    best = (tmp_path / "run" / "best" / "model.safetensors").read_bytes()
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(RunExistsError, match="already holds a run; pass --resume .* or "
                                             "--overwrite"):
        lm_main(_lm(tmp_path, hidden_size=8), log=_quiet)
    assert (tmp_path / "run" / "best" / "model.safetensors").read_bytes() == best
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released after the refusal


def test_overwrite_clears_the_old_run_first(tmp_path):
    lm_main(_lm(tmp_path, max_steps=9), log=_quiet)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    lm_main(_lm(tmp_path, overwrite=True, hidden_size=8), log=_quiet)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "valid"] == [3, 6]  # none of the old 9
    assert json.loads((tmp_path / "run" / "config.json").read_text())["hidden_size"] == 8
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # not a run file: kept
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        _lm(tmp_path, overwrite=True, resume=True)


def test_lm_over_a_seq2seq_run_is_refused_and_resume_names_the_task(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a} {b}\t{b} {a}\n" for a in "abcde" for b in "abcde") * 4)
    s2s_main(config_from_dict(Seq2SeqConfig, {**S2S_TINY, "train": str(pairs),
                                              "out": str(tmp_path / "run")}), log=_quiet)
    with pytest.raises(RunExistsError):
        lm_main(_lm(tmp_path), log=_quiet)
    with pytest.raises(ResumeMismatchError, match=r"differs in task \(saved 'Seq2Seq', now "
                                                  r"'LanguageModel'\)"):
        lm_main(_lm(tmp_path, resume=True), log=_quiet)


def test_resume_with_other_data_or_model_names_every_difference(tmp_path):
    lm_main(_lm(tmp_path), log=_quiet)
    other = TEXT.replace("dog", "cat!")
    with pytest.raises(ResumeMismatchError) as err:
        lm_main(_lm(tmp_path, data_text=other, resume=True, hidden_size=8), log=_quiet)
    msg = str(err.value)
    assert "\n" not in msg
    assert "data_fingerprint (saved" in msg
    assert "vocab (saved 30 char tokens, now 29, new: '!')" in msg
    assert "model_args.hidden_size (saved 16, now 8)" in msg
    assert "model_args.vocab_size (saved 30, now 29)" in msg


def test_resume_mismatches_ignores_keys_an_old_checkpoint_lacks():
    saved = {"model_class": "LanguageModel", "model_args": {"hidden_size": 4}}
    now = {**saved, "data_fingerprint": "abc", "vocab": {"tokens": ["<unk>"]}}
    assert resume_mismatches(saved, now) == []


def test_lock_refuses_a_live_process_and_takes_over_a_dead_ones(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid,
                                                      "host": os.uname().nodename}))
        with pytest.raises(RunInUseError, match=f"in use by process {sleeper.pid}"):
            acquire_lock(tmp_path)
        with pytest.raises(RunInUseError):
            lm_main(_lm(tmp_path, out="."), log=_quiet)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_alive(sleeper.pid)
    notes = []
    acquire_lock(tmp_path, notes.append)
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "stale lock" in notes[0]
    with pytest.raises(RunInUseError, match=f"in use by process {os.getpid()}"):
        acquire_lock(tmp_path)  # one run per folder, even within one process
    release_lock(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = _dead_pid()
    for name in (f".last.tmp-{dead}", f".best.tmp-{dead}", f".last.old.trash-{dead}",
                 f".last.tmp-{os.getppid()}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half")
    notes = []
    with open_run(tmp_path, log=notes.append):
        pass
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f".last.tmp-{os.getppid()}"]  # a live process's save is left alone
    assert "removed 3 unfinished checkpoint save(s)" in notes[0]
    assert clean_stale(tmp_path) == []


def _step_of(path):
    return json.loads((path / "trainer.json").read_text())["step"]


def test_resume_picks_the_newest_complete_checkpoint_by_step(tmp_path):
    lm_main(_lm(tmp_path, max_steps=9, lr=0.0), log=_quiet)  # lr 0: best stays at step 3
    run = tmp_path / "run"
    # a kill between the two renames of a save: last/ is gone, last.old/ holds step 9
    (run / "last").rename(run / "last.old")
    best_step = _step_of(run / "best")
    assert best_step < 9
    assert ckpt.find_checkpoint(run, prefer="last") == run / "last.old"
    assert ckpt.find_checkpoint(run, prefer="best") == run / "best"
    cfg = _lm(tmp_path, max_steps=12, lr=0.0, resume=True)
    notes = []
    lm_main(cfg, log=notes.append)
    assert any("resumed from" in n and "last.old at step 9" in n for n in notes)
    assert _step_of(run / "last") == 12 and not (run / "last.old").exists()


def test_resume_without_a_checkpoint_starts_fresh_and_clears_orphan_rows(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3, "split": "valid",
                                                   "loss": 1.0}) + "\n")
    lm_main(_lm(tmp_path, resume=True), log=_quiet)
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().split("\n") if r]
    assert [(r["step"], r["split"]) for r in rows] == [(3, "train"), (3, "valid"),
                                                      (6, "train"), (6, "valid")]


def test_a_failed_start_leaves_the_directory_as_it_was(tmp_path):
    bad = tmp_path / "bin.dat"
    bad.write_bytes(b"\x00\x01binary")
    with pytest.raises(ValueError, match="looks binary"):
        lm_main(_lm(tmp_path, out="fresh", data=str(bad)), log=_quiet)
    assert not (tmp_path / "fresh").exists()  # no config.json, no empty folder to trip on
    lm_main(_lm(tmp_path, out="fresh"), log=_quiet)  # the corrected command just runs
    saved = (tmp_path / "fresh" / "config.json").read_bytes()
    with pytest.raises(ResumeMismatchError):
        lm_main(_lm(tmp_path, out="fresh", resume=True, hidden_size=8), log=_quiet)
    assert (tmp_path / "fresh" / "config.json").read_bytes() == saved
