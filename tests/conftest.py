"""Shared fixtures: deterministic seeds for every test, one intra-op thread.

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
