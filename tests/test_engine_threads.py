"""The fused engine's parallel paths against the reference: the blocked product split over
threads, the thread team, the loop split by batch rows, the pipelined backward, thread-count
independence, and the engine leaving torch's own thread count alone."""

from __future__ import annotations

import os

import pytest
import torch
from parity import (
    KINDS,
    assert_same,
    assert_stack_matches_reference,
    forward_backward,
    gradcheck_one_layer,
)

import rnnkit as rk
from rnnkit.engine import tuning

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_blocked_step_gemm_split_over_threads_matches_reference(kind, dtype):
    """`parallel_step_macs=0` splits every blocked step GEMM's columns over two threads;
    H = 70 gives LSTM 3 column blocks (the last partial), GRU 4, RNN and the backward 2."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with tuning.overridden(parallel_step_macs=0):
            cls, _, extra = KINDS[kind]
            fused = cls(9, 70, **extra, num_layers=2, engine="fused").to(dtype)
            ref = cls(9, 70, **extra, num_layers=2, engine="reference").to(dtype)
            ref.load_state_dict(fused.state_dict())
            x = torch.randn(6, 5, 9, dtype=dtype, requires_grad=True)
            kwargs = {"lengths": torch.tensor([6, 2, 5, 6, 1])}
            assert_same(forward_backward(fused, x, **kwargs),
                        forward_backward(ref, x, **kwargs), dtype)
    finally:
        torch.set_num_threads(old_threads)


@pytest.fixture
def team_everywhere():
    """`team_batch=16, team_macs=0`: every step loop of a batch up to 16 runs on a thread team,
    whatever the size of its steps (the default leaves small steps and most plain RNNs on one
    thread)."""
    before = torch.get_num_threads()
    with tuning.overridden(team_batch=16, team_macs=0):
        yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_thread_team_matches_reference(kind, dtype, threads, team_everywhere):
    """H = 70 splits into slices of whole vectors (float32 with 2 threads: 32 + 38 units, with
    3: 16 + 32 + 22), the last one ending in a partial vector; lengths end sequences at
    different steps in both directions, and the state enters and leaves each layer."""
    torch.set_num_threads(threads)
    assert_stack_matches_reference(kind, dtype, 70, [6, 2, 5, 6, 1])


@pytest.mark.parametrize("kind", KINDS)
def test_thread_team_gradcheck_float64(kind, team_everywhere):
    """H = 20 in float64 gives two slices (8 and 12 units) of every product and row pass."""
    torch.set_num_threads(2)
    assert gradcheck_one_layer(kind, 20, [5, 2, 4])


def _assert_same_with_one_and_two_threads(cls, hidden: int, shape: tuple[int, int, int]):
    """The same seeded layer call with torch at one thread and at two."""
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(3)
            layer = cls(shape[2], hidden, num_layers=2, bidirectional=True, engine="fused")
            results.append(forward_backward(layer, torch.randn(*shape, requires_grad=True)))
    finally:
        torch.set_num_threads(before)
    assert_same(results[0], results[1], torch.float32)


def test_thread_team_equals_one_thread(team_everywhere):
    """A GRU call on one thread (the plain loop) and on a team of two."""
    _assert_same_with_one_and_two_threads(rk.GRU, 48, (7, 4, 24))



@pytest.fixture
def pipeline_in_chunks_of_two_steps():
    """`pipeline_rows=10` at B = 5: the pipelined backward's second thread takes the
    parameter gradients two steps at a time (the default takes 256 rows per chunk)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    with tuning.overridden(pipeline_rows=10):
        yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_pipelined_backward_matches_reference(kind, dtype, bias,
                                              pipeline_in_chunks_of_two_steps):
    """Small steps on two threads: the loop on one, the parameter gradients and dx of finished
    chunks on the other. 7 steps make 4 chunks (the last partial) in either direction; the
    second layer's dx adds both directions' parts; lengths end sequences mid-chunk."""
    assert_stack_matches_reference(kind, dtype, 24, [7, 3, 6, 7, 1], bias=bias)


@pytest.mark.parametrize("kind", KINDS)
def test_pipelined_backward_gradcheck_float64(kind, pipeline_in_chunks_of_two_steps):
    assert gradcheck_one_layer(kind, 6, [6, 2, 5, 6, 3])


@pytest.fixture
def split_everywhere(team_everywhere):
    """`split_rows=1`: every step loop with at least one batch row per thread splits by
    rows (the default asks for four rows per thread)."""
    with tuning.overridden(split_rows=1):
        yield


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_loop_split_by_batch_rows_matches_reference(kind, dtype, threads, split_everywhere):
    """B = 5 over 2 threads (2 + 3 rows) or 3 (1 + 2 + 2), each running all steps of its rows,
    forward and backward; lengths end rows at different steps in both directions."""
    torch.set_num_threads(threads)
    assert_stack_matches_reference(kind, dtype, 21, [6, 2, 5, 6, 1])


@pytest.mark.parametrize("kind", KINDS)
def test_loop_split_by_batch_rows_gradcheck_float64(kind, split_everywhere):
    torch.set_num_threads(2)
    assert gradcheck_one_layer(kind, 6, [5, 2, 4, 3])


def test_same_results_with_one_and_two_threads():
    _assert_same_with_one_and_two_threads(rk.LSTM, 32, (12, 16, 24))



_FIRST_CALL_SCRIPT = """
import torch
import rnnkit as rk
from rnnkit import engine
from rnnkit.engine import tuning
torch.manual_seed(0)
layer = rk.GRU(128, 128, engine="fused")  # under 16M multiply-adds: BLAS on one MKL thread,
with torch.no_grad():                     # and large enough steps to ask for a thread team
    layer(torch.randn(100, 1, 128))
print(torch.get_num_threads())
"""


def test_first_threaded_op_of_a_process_being_an_engine_call_keeps_torch_threads():
    """In a fresh process at torch's default thread count, the engine call is the first op to
    ask ATen for threads, from inside its one-MKL-thread scope; ATen must not take MKL's one
    thread for OpenMP's (it did: every later op of the process ran on one thread)."""
    import subprocess
    import sys

    def run(code: str) -> int:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                                 "MKL_NUM_THREADS")}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300, check=True)
        return int(done.stdout.split()[-1])

    default = run("import torch; print(torch.get_num_threads())")
    if default < 2:
        pytest.skip("torch runs one thread by default on this machine")
    assert run(_FIRST_CALL_SCRIPT) == default


def test_engine_calls_leave_torch_thread_count_alone():
    """ATen's parallel_for fixes OpenMP's thread count on its first call in a thread; the engine
    must not let that happen while it has MKL at one thread, or every later torch op of the
    thread runs on one thread. Checked in a fresh thread, where that first call is ours."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []

    def work():
        layer = rk.LSTM(128, 128, engine="fused")  # B=16, H=128: threaded step products
        layer(torch.randn(3, 16, 128))[0].sum().backward()
        seen.append(torch.get_num_threads())

    try:
        import threading

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        torch.set_num_threads(before)
    assert seen == [2]
