"""The extensions' build: a failed build warns once and leaves the reference path."""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit as rk
from rnnkit.engine import _build


def test_a_failed_build_warns_once_and_returns_none(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    bad = tmp_path / "broken.cpp"
    bad.write_text("this is not C++\n")
    ext = _build.Extension("broken", "test extension", (bad,), ())
    with pytest.warns(RuntimeWarning, match="test extension could not be built"):
        assert ext.load(quiet=True) is None
    assert ext.error and "could not be built" in ext.error
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert ext.load(quiet=True) is None
    assert ext.cache_dir().parent == tmp_path / "broken"


def test_without_the_engine_auto_uses_the_reference_path_and_fused_raises(monkeypatch):
    monkeypatch.setattr(_build.ENGINE, "module", None)
    monkeypatch.setattr(_build.ENGINE, "error", "the fused CPU engine could not be built (test)")
    torch.manual_seed(0)
    auto = rk.LSTM(4, 5, engine="auto")
    ref = rk.LSTM(4, 5, engine="reference")
    ref.load_state_dict(auto.state_dict())
    x = torch.randn(3, 2, 4)
    torch.testing.assert_close(auto(x)[0], ref(x)[0], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="could not be built"):
        rk.LSTM(4, 5, engine="fused")(x)


def test_a_build_lock_left_by_a_killed_build_does_not_block_the_next(tmp_path):
    """torch's `lock` file, left behind by a build killed midway, made every later build wait
    forever; the build now holds a flock instead (released by the kernel when its holder dies)
    and clears a stale `lock` under it."""
    import subprocess
    import sys

    stale = tmp_path / "lock"
    stale.write_text("")
    holder = subprocess.Popen(  # takes the flock, then is killed while holding it
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from rnnkit.engine._build import _build_lock\n"
         f"with _build_lock(Path({str(tmp_path)!r})):\n"
         "    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not stale.exists()  # the holder cleared it
        stale.write_text("")       # as torch's build would have, before being killed
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with _build._build_lock(tmp_path):
        assert not stale.exists()
