"""Resume is exact for every training task: a run stopped half-way and resumed ends with the
weights of the uninterrupted run (seq2seq's scheduled-sampling generator included)."""

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.data.pairs import write_pairs
from rnnkit.train import classify, seq2seq
from rnnkit.train.config import config_from_dict
from rnnkit.train.trainer import Trainer


def _pairs(tmp_path):
    return write_pairs([(f"{a} {b} {c}", f"{c} {b} {a}") for a in "abcd" for b in "abcd"
                        for c in "abc"], tmp_path / "pairs.tsv")


def _labels(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("".join(f"{w}{i}\t{w[0]}\n" for i in range(30)
                            for w in ("alpha", "beta", "gamma")))
    return path


TASKS = {
    "seq2seq": (seq2seq, lambda t: {**seq2seq.TINY, "train": str(_pairs(t)), "dropout": 0.2,
                                    "sampling_schedule": "linear", "max_steps": 8,
                                    "eval_every": 4}),
    "classify": (classify, lambda t: {**classify.TINY, "data": str(_labels(t)),
                                      "dropout": 0.2}),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_stopped_and_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, task):
    module, settings = TASKS[task]
    values = settings(tmp_path)
    cls = module.Seq2SeqConfig if task == "seq2seq" else module.ClassifyConfig
    module.main(config_from_dict(cls, {**values, "out": str(tmp_path / "full")}),
                log=lambda s: None)
    real_fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: real_fit(self, stop_at_step=3))
    module.main(config_from_dict(cls, {**values, "out": str(tmp_path / "split")}),
                log=lambda s: None)
    monkeypatch.setattr(Trainer, "fit", real_fit)
    torch.manual_seed(4321)  # the resumed run must restore every RNG itself
    notes = []
    module.main(config_from_dict(cls, {**values, "out": str(tmp_path / "split"),
                                       "resume": True}), log=notes.append)
    assert any("at step 3" in n for n in notes)
    full = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "last" / "model.safetensors"))
    assert all(torch.equal(full[k], split[k]) for k in full)
