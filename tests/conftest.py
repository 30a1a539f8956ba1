"""Shared fixtures: deterministic seeds for every test, one intra-op thread, the built engine
extension (`ext`; the test skips when it cannot be built).

The tests use tiny tensors, where a second OpenMP thread only adds barrier waits (milliseconds
per op when the machine is busy); tests that are about threads set the count themselves.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def ext():
    from rnnkit.engine import load_extension

    module = load_extension(quiet=True)
    if module is None:
        pytest.skip("the fused engine could not be built")
    return module

