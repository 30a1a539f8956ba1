"""The CLI never shows a traceback for a user error: a table of bad command lines, each ending
with exit code 2 and one line on stderr that names the problem."""

import json
import shutil
import subprocess
import sys

import pytest

from rnnkit.cli import main
from rnnkit.data.pairs import write_pairs

LM = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--seq-len", "8",
      "--max-steps", "4", "--time-budget", "0", "--eval-every", "2", "--eval-batches", "2",
      "--sample-length", "0", "--no-progress", "--backend", "torch"]
S2S = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--max-epochs",
       "0", "--max-steps", "4", "--eval-every", "2", "--eval-examples", "4", "--no-progress",
       "--backend", "torch"]
CLF = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "8", "--max-steps", "4",
       "--time-budget", "0", "--eval-every", "2", "--no-progress"]


def _flip(path):
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x10
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    t = tmp_path_factory.mktemp("cli_errors")
    f = {"tmp": t}
    f["txt"] = t / "text.txt"
    f["txt"].write_text("to be or not to be, that is the question.\n" * 30)
    f["pairs"] = write_pairs([(f"{a} {b}", f"{b} {a}") for a in "abcde" for b in "abcde"] * 4,
                             t / "pairs.tsv")
    f["labels"] = t / "labels.tsv"
    f["labels"].write_text("".join(f"{w}{i}\t{w[0]}\n" for i in range(40)
                                   for w in ("alpha", "beta", "gamma")))
    f["bin"] = t / "blob.bin"
    f["bin"].write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    f["latin"] = t / "latin.txt"
    f["latin"].write_bytes("d\u00e9j\u00e0 vu\n".encode("latin-1") * 50)
    f["tsv3"] = t / "three.tsv"
    f["tsv3"].write_text("a b\tb a\nc d\td c\textra\n")
    f["empty"] = t / "empty.txt"
    f["empty"].write_text("")
    f["badjson"] = t / "bad.json"
    f["badjson"].write_text('{"hidden_size": 16,')
    f["unknown"] = t / "unknown.json"
    f["unknown"].write_text(json.dumps({"hiden_size": 16}))
    f["dir"] = t / "a_folder"
    f["dir"].mkdir()
    f["missing"] = t / "no_such_file"
    assert main(["train", "lm", "--data", str(f["txt"]), "--out", str(t / "lm"), *LM]) == 0
    assert main(["train", "seq2seq", "--train", str(f["pairs"]), "--out", str(t / "s2s"),
                 *S2S]) == 0
    assert main(["train", "classify", "--data", str(f["labels"]), "--out", str(t / "clf"),
                 *CLF]) == 0
    f.update(lm=t / "lm", s2s=t / "s2s", clf=t / "clf")
    for name, damage in (("bad_lm", "flip"), ("bad_s2s", "flip"), ("cut_s2s", "cut"),
                         ("edited_lm", "edit")):
        src = f[name.split("_")[1]]
        shutil.copytree(src, t / name)
        f[name] = t / name
        if damage == "flip":
            _flip(t / name / "best" / "model.safetensors")
        elif damage == "cut":
            p = t / name / "best" / "config.json"
            p.write_text(p.read_text()[:200])
        else:
            for ck in ("best", "last"):
                p = t / name / ck / "config.json"
                p.write_text(p.read_text().replace('"hidden_size": 16', '"hidden_size": 32'))
    return f


# (command line, text the one-line message must hold); {name} is a path from `env`.
BAD = [
    ("train lm --max-vocab -1", "max_vocab must be >= 0, got -1"),
    ("train lm --max-chars -5", "max_chars must be >= 0, got -5"),
    ("train lm --eval-batches -1", "eval_batches must be >= 0, got -1"),
    ("train lm --hidden-size 0", "hidden_size must be >= 1, got 0"),
    ("train lm --lr nan", "lr must be a finite number, got nan"),
    ("train lm --dropout 1.5", "dropout must be < 1.0, got 1.5"),
    ("train lm --val-fraction 0", "val_fraction must be in (0, 1), got 0.0"),
    ("train lm --beta2 1", "beta2 must be < 1.0"),
    ("train lm --max-bad-steps 0", "max_bad_steps must be >= 1"),
    ("train lm --optimizer adagrad", "argument --optimizer: invalid choice: 'adagrad'"),
    ("train lm --hidden-size x", "argument --hidden-size: invalid int value: 'x'"),
    ("train lm --nonsense", "unrecognized arguments: --nonsense"),
    ("train lm --max-steps 0 --time-budget 0", "no stopping rule"),
    ("train lm --tie-weights", "tie_weights needs embedding_size == hidden_size"),
    ("train lm --encoding klingon", "encoding 'klingon' is not a known text encoding"),
    ("train lm --out {txt}", "is a file; expected a run directory"),
    ("train lm --config {dir}", "is a directory; expected a JSON file"),
    ("train lm --config {missing}", "config file '{missing}' does not exist"),
    ("train lm --config {badjson}", "is not valid JSON"),
    ("train lm --config {unknown}", "unknown config key(s) ['hiden_size']"),
    ("train lm --data {bin} --out {tmp}/x1", "blob.bin' looks binary: a NUL byte at byte "
                                             "offset 7"),
    ("train lm --data {latin} --out {tmp}/x2", "latin.txt' is not valid utf-8 at byte offset 1"),
    ("train lm --data {missing} --out {tmp}/x3", "data path '{missing}' does not exist"),
    ("train lm --data {empty} --out {tmp}/x4", "holds no text"),
    ("train lm --data {txt} --out {lm}", "already holds a run; pass --resume"),
    ("train lm --out {lm} --resume --overwrite", "resume and overwrite exclude each other"),
    ("train lm --data {txt} --out {s2s} --resume", "differs in task (saved 'Seq2Seq', now "
                                                   "'LanguageModel')"),
    ("train lm --data {latin} --encoding latin-1 --out {lm} --resume",
     "differs in data_fingerprint"),
    ("train lm --data {txt} --out {edited_lm} --resume", "config.json' fails its sha256"),
    ("train seq2seq", "train is required: a pairs file (--train PAIRS)"),
    ("train seq2seq --train {tsv3} --out {tmp}/x5", "three.tsv' line 2: expected 2 "
                                                    "tab-separated columns"),
    ("train seq2seq --train {missing}", "pairs file '{missing}' does not exist"),
    ("train seq2seq --train {pairs} --valid-fraction 1.5", "valid_fraction must be < 1.0"),
    ("train seq2seq --train {pairs} --level sentence", "argument --level: invalid choice"),
    ("train seq2seq --train {pairs} --share-vocab --src-level char --tgt-level word "
     "--out {tmp}/x6", "share_vocab needs one token level"),
    ("train seq2seq --train {pairs} --sampling-schedule exponential --sampling-k 2",
     "sampling_k must be < 1 for the exponential schedule"),
    ("train classify --data {tsv3} --out {tmp}/x7", "expected 2 tab-separated columns"),
    ("train classify --batch-size -4", "batch_size must be >= 1, got -4"),
    ("train music", "data is required: a piano-roll .mat file"),
    ("train music --data {txt} --out {tmp}/x8", "is not a readable .mat file"),
    ("train music --eval-every 0", "eval_every must be >= 1, got 0"),
    ("classify {lm} hello", "holds a 'LanguageModel', not a SequenceClassifier"),
    ("classify {s2s} hello", "holds a 'Seq2Seq', not a SequenceClassifier"),
    ("classify {clf} hello --top 0", "--top must be >= 1, got 0"),
    ("classify {missing} hello", "no checkpoint in '{missing}'"),
    ("classify {txt} hello", "is a file; expected a run directory"),
    ("sample {s2s}", "holds a 'Seq2Seq', not a LanguageModel"),
    ("sample {lm} --top-p 0", "--top-p must be in (0, 1], got 0.0"),
    ("sample {lm} --length -3", "--length must be >= 0, got -3"),
    ("sample {lm} --prompt \u00e9t\u00e9", "never saw in training: '\u00e9'"),
    ("sample {bad_lm}", "best/model.safetensors' fails its sha256 check"),
    ("sample {lm} --checkpoint worst", "argument --checkpoint: invalid choice: 'worst'"),
    ("translate {lm} --input {pairs}", "holds a 'LanguageModel', not a Seq2Seq"),
    ("translate {s2s} --beam 0", "--beam must be >= 1, got 0"),
    ("translate {s2s} --beam 2 --n-best 3", "--n-best must be in [1, --beam=2], got 3"),
    ("translate {s2s} --input {missing}", "input file '{missing}' does not exist"),
    ("translate {s2s} --input {bin}", "looks binary"),
    ("translate {bad_s2s} --input {pairs}", "model.safetensors' fails its sha256 check"),
    ("eval {s2s} --test {tsv3}", "expected 2 tab-separated columns"),
    ("eval {s2s}", "the following arguments are required: --test"),
    ("eval {clf} --test {pairs}", "are not among the model's 3 classes"),
    ("eval {cut_s2s} --test {pairs}", "config.json' has 200 bytes, expected"),
    ("eval {s2s} --test {pairs} --batch-size 0", "--batch-size must be >= 1, got 0"),
    ("lab gradients --cells foo", "--cells: unknown ['foo']"),
    ("lab gradients --length 0", "--length and --hidden-size must be >= 1"),
    ("esn --reservoir -5", "--reservoir must be >= 1, got -5"),
    ("esn --leak-rate 2", "--leak-rate must be in (0, 1], got 2.0"),
    ("demo --steps 0", "--steps must be >= 1, got 0"),
    ("nosuchcommand", "argument COMMAND: invalid choice: 'nosuchcommand'"),
    ("train nosuchtask", "argument TASK: invalid choice: 'nosuchtask'"),
]


def _argv(line, env):
    return [part.format(**{k: str(v) for k, v in env.items()}) for part in line.split(" ")]


def test_the_table_is_large():
    assert len(BAD) >= 40


@pytest.mark.parametrize("line,expected", BAD, ids=[b[0][:48] for b in BAD])
def test_bad_command_line_exits_2_with_one_line(env, capsys, line, expected):
    argv = _argv(line, env)
    expected = expected.format(**{k: str(v) for k, v in env.items()})
    code = main(argv)
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if x.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "error: " in lines[0] and lines[0].startswith("rnnkit")
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("task", ["lm", "seq2seq", "classify", "music"])
def test_every_train_help_works(task, capsys):
    assert main(["train", task, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--overwrite" in out and "--resume" in out and "--max-bad-steps" in out


def _real(*args):
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_real_processes_one_line_and_exit_2(env):
    r = _real("train", "classify", "--help")
    assert r.returncode == 0 and "10% of --data" in r.stdout
    for line, expected in (BAD[20],):
        r = _real(*_argv(line, env))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and expected in r.stderr


def test_debug_shows_the_traceback(env):
    r = _real("--debug", "sample", str(env["bad_lm"]))
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "CheckpointError" in r.stderr
