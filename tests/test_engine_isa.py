"""The kernels compiled for the lower instruction sets (AVX2, SSE2 baseline), which a machine with
AVX-512 never picks by itself: the engine's parity tests rerun with `RNNKIT_ISA` forcing each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# Every product path (BLAS, blocked, oneDNN, threads, the thread team, the loop split by batch
# rows, the pipelined backward), the packed step product alone, and every variant kernel.
SELECTION = ("every_gemm_path or blocked_step or thread_team or loop_split or pipelined or "
             "fused_matches_reference or fused_decode_step_equals or packed_product or nt_product")


@pytest.mark.parametrize("isa", ["avx2", "base"])
def test_lower_instruction_sets_match_reference(isa):
    env = dict(os.environ, RNNKIT_ISA=isa)
    probe = subprocess.run(
        [sys.executable, "-c",
         "from rnnkit.engine import load_extension; print(load_extension().isa())"],
        env=env, capture_output=True, text=True, check=True)
    picked = probe.stdout.strip()
    if isa == "avx2" and picked != "avx2":
        pytest.skip(f"this CPU cannot run the AVX2 kernels (picked {picked})")
    assert picked == isa
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(TESTS / "test_engine.py"), str(TESTS / "test_engine_threads.py"),
         str(TESTS / "test_engine_variants.py"), str(TESTS / "test_engine_variants_pipeline.py"),
         str(TESTS / "test_decode_step_fused.py"), str(TESTS / "test_step_product.py"),
         "-k", SELECTION],
        env=env, capture_output=True, text=True, cwd=TESTS.parent)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
