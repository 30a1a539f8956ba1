"""Kill, Ctrl-C and resume: the resumed run ends bit-for-bit where the uninterrupted run ends;
non-finite steps are skipped, and too many in a row stop the run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.cli import main as cli_main
from rnnkit.data import StreamBatches
from rnnkit.models import LanguageModel
from rnnkit.train import TrainConfig, Trainer
from rnnkit.train.trainer import NonFiniteLossWarning, TrainingDivergedError

PHASES = ("loss", "backward", "update", "step")


def _ids(n=200, seed=3):
    return torch.randint(0, 12, (n,), generator=torch.Generator().manual_seed(seed))


def _loss_fn(model, batch, state):
    x, y = batch
    loss, state = model.loss(x, y, state)
    return loss, state, x.numel()


def _trainer(run_dir, seed=0, **overrides):
    torch.manual_seed(seed)
    model = LanguageModel(12, embedding_size=3, hidden_size=5, num_layers=2, dropout=0.3,
                          backend="torch")
    cfg = TrainConfig(**{"max_steps": 10, "eval_every": 4, "progress": False, "lr": 1e-2,
                         **overrides})
    batches = StreamBatches(_ids(), batch_size=2, seq_len=4)

    def evaluate(m):
        return {"loss": sum(m.loss(x, y)[0].item() for x, y in batches) / len(batches)}

    return Trainer(model, cfg, batches, _loss_fn, evaluate, run_dir,
                   {"model_class": "LanguageModel", "model_args": model.config()},
                   log=lambda s: None)


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _assert_bit_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    t = _trainer(tmp_path_factory.mktemp("full"))
    t.fit()
    return _weights(t), [h["loss"] for h in t.history]


def _resume_to_end(run_dir):
    torch.manual_seed(999)  # the resumed run must restore every RNG, not rely on this one
    t = _trainer(run_dir, seed=7)
    assert t.resume()
    start = t.step
    t.fit()
    return t, start


@pytest.mark.parametrize("phase", PHASES)
def test_sigint_finishes_the_step_then_resume_is_bit_exact(tmp_path, uninterrupted, phase):
    t = _trainer(tmp_path)
    sent = []

    def hook(p, step):
        # `step` counts finished steps: inside step 6 it is 5, at its "step" phase it is 6
        if p == phase and step == (6 if p == "step" else 5) and not sent:
            sent.append(p)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered inside the step

    t.hook = hook
    assert t.fit()["stop_reason"] == "interrupted"
    # the step under way was finished, and nothing after it was started
    assert json.loads((tmp_path / "last" / "trainer.json").read_text())["step"] == 6
    resumed, start = _resume_to_end(tmp_path)
    assert start == 6
    _assert_bit_equal(_weights(resumed), uninterrupted[0])
    assert [h["loss"] for h in resumed.history] == uninterrupted[1][6:]


@pytest.mark.parametrize("phase", ["loss", "backward"])
def test_keyboard_interrupt_inside_a_step_discards_it(tmp_path, uninterrupted, phase):
    t = _trainer(tmp_path)

    def hook(p, step):
        if p == phase and step == 5:
            raise KeyboardInterrupt  # a second Ctrl-C: no time to finish the step

    t.hook = hook
    assert t.fit()["stop_reason"] == "interrupted"
    assert json.loads((tmp_path / "last" / "trainer.json").read_text())["step"] == 5
    resumed, _ = _resume_to_end(tmp_path)
    _assert_bit_equal(_weights(resumed), uninterrupted[0])


def test_keyboard_interrupt_during_the_update_saves_nothing(tmp_path, uninterrupted):
    t = _trainer(tmp_path)
    notes = []
    t.log = notes.append

    def hook(p, step):
        if p == "update" and step == 5:
            raise KeyboardInterrupt

    t.hook = hook
    assert t.fit()["stop_reason"] == "interrupted"
    assert any("not saving" in n for n in notes)
    assert json.loads((tmp_path / "last" / "trainer.json").read_text())["step"] == 4
    resumed, start = _resume_to_end(tmp_path)
    assert start == 4
    _assert_bit_equal(_weights(resumed), uninterrupted[0])


def _nan_at(steps):
    calls = []

    def loss_fn(model, batch, state):
        calls.append(1)
        loss, state, n = _loss_fn(model, batch, state)
        return (loss * float("nan") if len(calls) in steps else loss), state, n
    return loss_fn


def test_non_finite_loss_skips_the_update_with_a_warning(tmp_path):
    t = _trainer(tmp_path, max_steps=6)
    t.loss_fn = _nan_at({3})
    before = {}

    def hook(p, step):
        if p == "step" and step == 2:
            before.update(_weights(t))

    t.hook = hook
    with pytest.warns(NonFiniteLossWarning, match=r"the loss is nan at step 3 .* skipped"):
        summary = t.fit()
    assert summary["step"] == 6 and t.bad_steps == 0
    assert t.index == 7  # the bad batch was passed over, not retried
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in t.model.parameters())
    assert all(torch.isfinite(v).all() for v in _weights(t).values())


def test_non_finite_steps_in_a_row_stop_the_run(tmp_path):
    t = _trainer(tmp_path, max_bad_steps=3)
    t.loss_fn = _nan_at({2, 3, 4, 5})
    with pytest.warns(NonFiniteLossWarning) as record, \
            pytest.raises(TrainingDivergedError, match=r"3 steps in a row .*\(max_bad_steps=3\)"):
        t.fit()
    assert len(record) == 2 and t.step == 1


# The CLI prints warnings itself (one line each), so they are shown rather than recorded.
@pytest.mark.filterwarnings("always::rnnkit.train.trainer.NonFiniteLossWarning")
def test_cli_reports_a_diverged_run_in_one_line(tmp_path, monkeypatch, capsys):
    data = tmp_path / "t.txt"
    data.write_text("abcdefgh\n" * 100)
    real = LanguageModel.loss

    def nan_loss(self, *args, **kw):
        loss, state = real(self, *args, **kw)
        return loss * float("nan") if self.training else loss, state

    monkeypatch.setattr(LanguageModel, "loss", nan_loss)
    code = cli_main(["train", "lm", "--data", str(data), "--out", str(tmp_path / "r"),
                     "--hidden-size", "8", "--embedding-size", "4", "--max-steps", "20",
                     "--time-budget", "0", "--no-progress", "--backend", "torch",
                     "--sample-length", "0", "--max-bad-steps", "2"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith("rnnkit: warning: the loss is nan at step 1 ")
    assert err[1].startswith("rnnkit train lm: error: the loss is nan at step 1 ")
    assert len(err) == 2


# ---- real processes: SIGKILL and SIGINT mid-run, then --resume ---------------------------

_FLAGS = ["--embedding-size", "8", "--hidden-size", "32", "--batch-size", "4", "--seq-len",
          "16", "--time-budget", "0", "--eval-every", "10", "--eval-batches", "2",
          "--sample-length", "0", "--no-progress", "--backend", "torch", "--threads", "1",
          "--dropout", "0.2", "--max-steps", "120"]


def _cli(data, out, *extra):
    return [sys.executable, "-m", "rnnkit.cli", "train", "lm", "--data", str(data),
            "--out", str(out), *_FLAGS, *extra]


def _last_step(out):
    try:
        return json.loads((out / "last" / "trainer.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def _run_until(cmd, out, step, sig):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while _last_step(out) < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out_text, err = proc.communicate(timeout=60)
    return proc.returncode, out_text + err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    data = tmp / "text.txt"
    data.write_text("".join(f"line {i}: the quick brown fox {i * 7 % 13} jumps.\n"
                            for i in range(600)))
    full = tmp / "full"
    subprocess.run(_cli(data, full), check=True, capture_output=True)
    return data, load_file(str(full / "last" / "model.safetensors"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_process_then_resume_matches_the_uninterrupted_run(tmp_path, corpus, sig):
    data, expected = corpus
    out = tmp_path / "run"
    code, printed = _run_until(_cli(data, out), out, 30, sig)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert (out / ".rnnkit.lock").exists()  # left behind: stale, must not block
    else:
        assert code == 0 and "interrupted: finishing the current step" in printed
        assert not (out / ".rnnkit.lock").exists()
    stopped_at = _last_step(out)
    assert 30 <= stopped_at < 120
    if sig == signal.SIGKILL:  # (the refusal itself is covered in-process elsewhere)
        again = subprocess.run(_cli(data, out), capture_output=True, text=True)
        assert again.returncode == 2 and "already holds a run" in again.stderr
    resumed = subprocess.run(_cli(data, out, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {stopped_at}" in resumed.stdout
    got = load_file(str(out / "last" / "model.safetensors"))
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)
    assert not [p for p in Path(out).iterdir() if p.name.startswith(".") and "tmp" in p.name]


def test_non_finite_gradient_with_a_finite_loss_is_skipped_too(tmp_path):
    t = _trainer(tmp_path, max_steps=3)
    calls = []

    def loss_fn(model, batch, state):
        calls.append(1)
        loss, state, n = _loss_fn(model, batch, state)
        if len(calls) == 2:  # sqrt's gradient at 0 is inf: the loss stays finite
            loss = loss + 0.0 * torch.sqrt(model.decoder.weight.abs().min() * 0.0)
        return loss, state, n

    t.loss_fn = loss_fn
    with pytest.warns(NonFiniteLossWarning, match="the gradient norm is nan at step 2"):
        t.fit()
    assert t.step == 3 and all(torch.isfinite(v).all() for v in _weights(t).values())
