"""The variant kernels' pipelined backward (the parameter gradients a chunk of steps behind the
step loop, on a second thread) against the reference path, and its float64 gradcheck."""

from __future__ import annotations

import pytest
import torch
from test_engine_variants import DTYPES, KINDS, _gradcheck, _matches_reference

from rnnkit.engine import tuning


@pytest.fixture
def variant_pipeline_everywhere():
    """`direction_team_batch=0, split_rows=0, pipeline_rows=10`: at B = 5 every backward of six
    steps runs its parameter gradients on a second thread, two steps behind the step loop."""
    before = torch.get_num_threads()
    with tuning.overridden(direction_team_batch=0, split_rows=0, pipeline_rows=10) as values:
        yield values
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", [k for k in KINDS if not k.startswith("skip")])
def test_pipelined_backward_matches_reference(kind, dtype, variant_pipeline_everywhere):
    """The pipelined backward of every variant but the skip RNN (its own driver): chunks of rows
    summed into the weight and bias gradients, the x-side LayerNorm's backward and dx a chunk
    at a time; lengths, two layers, both directions, training masks, forward and every
    gradient against the reference."""
    _matches_reference(kind, dtype, 2)


@pytest.mark.parametrize("kind", ["ln_lstm", "ln_gru_regularised", "peephole_regularised",
                                  "leaky_regularised", "gru_regularised"])
def test_pipelined_backward_gradcheck_float64(kind, variant_pipeline_everywhere):
    """Random-projection gradcheck of every input through the variant kernels' pipeline."""
    _gradcheck(kind)
