"""Multi-process training (rnnkit.train.distributed, rnnkit.train.ddp): the shard helpers, and
two processes on localhost (gloo) against one process with the same global batch and data:
the same losses and weights for every training task (the language model through a resume),
rank 0 alone writing, a batch that does not divide refused, and a killed process failing the
run with a clear error instead of a hang.

The two processes are this file run as a script with torchrun's environment variables
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT on a free port); each runs the
`rnnkit train` commands in one process group, as `torchrun -m rnnkit train ...` would.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.train import distributed
from rnnkit.train.metrics import read_metrics

STEPS = 5
KILL_AT_STEP = 3  # process 1 exits at the forward pass of this step in the kill scenario
COMMON = ["--max-steps", str(STEPS), "--time-budget", "0", "--eval-every", "1",
          "--warmup-steps", "0", "--schedule", "constant", "--no-progress", "--threads", "1"]


# ---- the data and commands both sides run ----------------------------------------------------
def _write_data(d: Path) -> None:
    """Small files for each task; the counts make some batches split unevenly (see below)."""
    words = "the quick brown fox jumps over a lazy dog while seven ravens sing".split()
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[int(i)] for i in torch.randint(len(words), (12,), generator=g))
             for _ in range(120)]
    (d / "text.txt").write_text("\n".join(lines) + "\n")
    # forecast: 90 values of a noisy seasonal series (windows of 8, horizon 3: uneven batches)
    values = [10 + 3 * math.sin(2 * math.pi * t / 6) + 0.1 * t + float(torch.randn(1, generator=g))
              for t in range(90)]
    (d / "series.csv").write_text("y\n" + "".join(f"{v:.4f}\n" for v in values))
    # seq2seq: reverse three letters; 22 pairs = 5 batches of 4 and one of 2 (1 row per rank).
    letters = "abcdef"
    pairs = [" ".join(letters[(k * j + j) % 6] for j in range(1, 4)) for k in range(24)]
    (d / "pairs.tsv").write_text("".join(f"{p}\t{' '.join(reversed(p.split()))}\n"
                                         for p in pairs[:22]))
    (d / "pairs_valid.tsv").write_text("".join(f"{p}\t{' '.join(reversed(p.split()))}\n"
                                               for p in pairs[22:]))
    # classify: 17 examples = 4 batches of 4 and one of 1 (process 1 gets no row of it).
    names = [("anna", "a"), ("abel", "a"), ("ada", "a"), ("alan", "a"), ("amos", "a"),
             ("axel", "a"), ("adam", "a"), ("alma", "a"), ("bob", "b"), ("bea", "b"),
             ("ben", "b"), ("bill", "b"), ("bo", "b"), ("bram", "b"), ("bess", "b"),
             ("bert", "b"), ("bella", "b")]
    (d / "names.tsv").write_text("".join(f"{n}\t{c}\n" for n, c in names))
    (d / "names_valid.tsv").write_text("abe\ta\nbel\tb\n")
    # music: 7 pieces = batches of 4 and 3 (2 and 1 rows: ranks weigh by frames).
    import numpy as np
    from scipy import io as scipy_io

    def cell(pieces: list) -> np.ndarray:
        arr = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            arr[0, i] = p
        return arr

    def piece(t: int, key: int) -> np.ndarray:
        roll = np.zeros((t, 88), dtype=np.uint8)
        roll[::2, key] = 1
        roll[1::2, key + 4] = 1
        return roll

    scipy_io.savemat(str(d / "rolls.mat"), {
        "traindata": cell([piece(8 + i, 40 + i % 3) for i in range(7)]),
        "validdata": cell([piece(9, 41)]), "testdata": cell([piece(7, 42)])})


def _commands(d: Path, out: Path) -> dict[str, list[str]]:
    return {
        "lm": ["train", "lm", "--data", str(d / "text.txt"), "--embedding-size", "8",
               "--hidden-size", "16", "--batch-size", "4", "--seq-len", "8",
               "--eval-batches", "2", "--sample-length", "0", "--backend", "rnnkit",
               "--out", str(out / "lm"), *COMMON],
        "seq2seq": ["train", "seq2seq", "--train", str(d / "pairs.tsv"), "--valid",
                    str(d / "pairs_valid.tsv"), "--embedding-size", "8", "--hidden-size", "12",
                    "--batch-size", "4", "--max-epochs", "0", "--eval-examples", "2",
                    "--backend", "rnnkit", "--out", str(out / "seq2seq"), *COMMON],
        "classify": ["train", "classify", "--data", str(d / "names.tsv"), "--valid",
                     str(d / "names_valid.tsv"), "--embedding-size", "6", "--hidden-size", "10",
                     "--dropout", "0", "--batch-size", "4", "--out", str(out / "classify"),
                     *COMMON],
        "music": ["train", "music", "--data", str(d / "rolls.mat"), "--hidden-size", "12",
                  "--dropout", "0", "--batch-size", "4", "--out", str(out / "music"), *COMMON],
        "forecast": ["train", "forecast", "--data", str(d / "series.csv"), "--column", "y",
                     "--horizon", "3", "--window", "8", "--hidden-size", "8", "--batch-size",
                     "4", "--out", str(out / "forecast"), *COMMON],
    }


def _with(argv: list[str], **flags: str) -> list[str]:
    """argv with each `--flag value` replaced (added when absent)."""
    argv = list(argv)
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli(argv)
    return code, err.getvalue()


def _worker(data: Path, out: Path) -> None:
    """One of the two processes: every task, a refused batch size, then the kill scenario."""
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    results: dict[str, object] = {}

    def record(key: str, value: object) -> None:
        results[key] = value
        (out / f"rank{rank}.json").write_text(json.dumps(results))

    with distributed.session():
        cmds = _commands(data, out)
        record("lm_part1", _run(_with(cmds["lm"], max_steps="3")))
        record("lm", _run([*cmds["lm"], "--resume"]))
        for task in ("seq2seq", "classify", "music", "forecast"):
            record(task, _run(cmds[task]))
        record("odd_batch", _run(_with(cmds["lm"], batch_size="3", out=str(out / "odd"))))
        record("scratch_left", os.listdir(tempfile.gettempdir()))
        if rank == 1:  # die in the middle of a step, as a killed process would
            from rnnkit.train.trainer import Trainer

            def die(self: Trainer, phase: str) -> None:
                if phase == "loss" and self.step + 1 == KILL_AT_STEP:
                    os._exit(17)
            Trainer._hook_at = die
        start = time.monotonic()
        code, err = _run(_with(cmds["lm"], max_steps="50", out=str(out / "killed")))
        record("killed", [code, err, time.monotonic() - start])


# ---- the test side ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ext):
    """Both sides: the two-process runs (subprocesses) and the one-process references."""
    base = tmp_path_factory.mktemp("ddp")
    data, two, one, tmp = base / "data", base / "two", base / "one", base / "tmp"
    for d in (data, two, one, tmp):
        d.mkdir()
    _write_data(data)
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "RNNKIT_DIST_TIMEOUT": "60", "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    procs = []
    for r in range(2):
        log = open(base / f"rank{r}.log", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(
            [sys.executable, __file__, str(data), str(two)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=log, stderr=log), log))
    # The one-process references run here meanwhile, on the same commands.
    for task, argv in _commands(data, one).items():
        code, err = _run(argv)
        assert code == 0, f"one-process {task} failed: {err}"
    deadline = time.monotonic() + 240
    for p, log in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q, _ in procs:
                q.kill()
            pytest.fail("the two processes hung: " + (base / "rank0.log").read_text()[-3000:])
        finally:
            log.close()
    results = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    return {"one": one, "two": two, "tmp": tmp, "data": data, "results": results,
            "exit_codes": [p.returncode for p, _ in procs],
            "logs": [(base / f"rank{r}.log").read_text() for r in range(2)]}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "last" / "model.safetensors"))


@pytest.mark.parametrize("task", ["lm", "seq2seq", "classify", "music", "forecast"])
def test_two_processes_train_as_one(runs, task):
    codes = [res[task] for res in runs["results"]]
    assert all(c == [0, ""] for c in codes), (codes, runs["logs"][0][-2000:])
    if task == "lm":  # 3 steps, then --resume to 5
        assert all(res["lm_part1"] == [0, ""] for res in runs["results"])
        assert f"resumed from {runs['two'] / 'lm' / 'last'} at step 3" in runs["logs"][0]
    one, two = runs["one"] / task, runs["two"] / task
    rows_one, rows_two = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    # One train and one valid row per step, written once (by rank 0); the language model's
    # rows 1-3 come from the first run, 4-5 from the resumed one.
    assert [(r["step"], r["split"]) for r in rows_two] == \
        [(s, split) for s in range(1, STEPS + 1) for split in ("train", "valid")]
    for a, b in zip(rows_one, rows_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6), (a, b)
    assert rows_one[-1]["loss"] < rows_one[1]["loss"]  # it trained: valid loss fell
    w1, w2 = _weights(one), _weights(two)
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6, msg=k)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_the_runs_above_train_through_the_fused_engine(ext):
    """What DDP's hooks saw in the lm run: the gradients of the engine's autograd Function."""
    from rnnkit.models import LanguageModel

    model = LanguageModel(29, 8, 16, 1, "lstm", 0.0, False, "rnnkit")
    out, _ = model.rnn(torch.randn(8, 2, 8))
    assert "Fused" in type(out.grad_fn).__name__


def test_language_model_checkpoint_holds_the_global_carried_state(runs):
    from safetensors.torch import load_file

    one = load_file(str(runs["one"] / "lm" / "last" / "trainer.safetensors"))
    two = load_file(str(runs["two"] / "lm" / "last" / "trainer.safetensors"))
    for k in ("carry.0", "carry.1"):  # (L, B, H): both processes' streams, in rank order
        assert two[k].shape == (1, 4, 16)
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)
    assert "rng.rank1.torch" in two and "rng.rank1.torch" not in one


def test_a_two_process_checkpoint_resumes_on_one_process(runs, tmp_path):
    """Step 6 on one process, resumed from the 2-process run and from the 1-process run."""
    import shutil

    rows = {}
    for side in ("one", "two"):
        run = tmp_path / side
        shutil.copytree(runs[side] / "lm", run)
        argv = _with(_commands(runs["data"], tmp_path)["lm"], out=str(run), max_steps="6")
        code, err = _run([*argv, "--resume"])
        assert code == 0, err
        rows[side] = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows["two"]] == [s for s in range(1, 7) for _ in range(2)]
    for a, b in zip(rows["one"][-2:], rows["two"][-2:], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6), (a, b)


def test_other_ranks_write_nothing_that_stays(runs):
    # Rank 1's scratch folders (its config.json) are gone after each run it finished; the
    # killed run's stays, as anything a killed process leaves.
    assert [n for n in runs["results"][1]["scratch_left"] if n.startswith("rnnkit-")] == []
    left = [p.name[:13] for p in runs["tmp"].iterdir() if p.name.startswith("rnnkit-")]
    assert left == ["rnnkit-rank1-"]


def test_a_global_batch_that_does_not_divide_is_refused(runs):
    for res in runs["results"]:
        code, err = res["odd_batch"]
        assert code == 2
        assert "batch_size=3 is the global batch" in err and "2 processes" in err
    assert not (runs["two"] / "odd").exists()


def test_a_killed_process_fails_the_run_with_a_clear_error(runs):
    assert runs["exit_codes"][1] == 17  # process 1 died at step KILL_AT_STEP
    code, err, seconds = runs["results"][0]["killed"]
    assert code == 2 and err.count("\n") == 1, err
    assert f"process 0 of 2 lost the others after step {KILL_AT_STEP - 1}:" in err
    assert "stopped (killed or crashed)" in err and "--resume" in err
    said = err.split("torch.distributed said: ")[1]
    assert "Connection" in said and "GLHF" not in said  # gloo's reason, without its advice
    assert seconds < 60  # found out when the connection closed, not after a hang
    assert runs["exit_codes"][0] == 0
    saved = read_metrics(runs["two"] / "killed" / "metrics.jsonl")
    assert saved[-1]["step"] == KILL_AT_STEP - 1  # steps 1-2 are kept


# ---- the helpers on their own ----------------------------------------------------------------
class _Pairs(NamedTuple):
    src: torch.Tensor
    src_len: torch.Tensor


def test_shard_range_splits_rows_into_contiguous_blocks():
    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            blocks = [distributed.shard_range(n, r, world) for r in range(world)]
            assert [i for a, b in blocks for i in range(a, b)] == list(range(n))
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shard_batch_cuts_every_tensor_along_its_batch_dimension():
    x = torch.arange(15).view(3, 5)  # (T, B)
    lengths, labels = torch.tensor([3, 1, 2, 3, 2]), torch.tensor([0, 1, 0, 1, 1])
    part = distributed.shard_batch((x, lengths, labels), 1, 2)
    assert part[0].tolist() == x[:, 3:].tolist()
    assert part[1].tolist() == [3, 2] and part[2].tolist() == [1, 1]
    pairs = distributed.shard_batch(_Pairs(torch.zeros(4, 3, 2), torch.tensor([4, 2, 3])), 0, 2)
    assert isinstance(pairs, _Pairs) and pairs.src.shape == (4, 2, 2)
    assert pairs.src_len.tolist() == [4, 2]
    assert distributed.shard_batch((torch.zeros(2, 1), torch.ones(1)), 1, 2) is None
    with pytest.raises(ValueError, match=r"one batch size B .* got shapes \[\(2, 3\), \(4,\)\]"):
        distributed.shard_batch((torch.zeros(2, 3), torch.zeros(4)), 0, 2)


def test_local_batch_size_needs_an_even_split():
    assert distributed.local_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match=r"batch_size=6 .* among the 4 processes"):
        distributed.local_batch_size(6, 4)


def test_single_process_needs_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init() is False and not distributed.is_active()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main()
    # On one process a collective error stays what it is (nothing is converted).
    assert distributed.raise_if_lost(RuntimeError("gloo: Connection reset"), "at step 1") is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR.* is not set; start the run with torchrun"):
        distributed.init()
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="RNNKIT_DIST_TIMEOUT must be a positive number"):
        distributed.timeout_s()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
