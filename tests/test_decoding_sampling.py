"""Tests for rnnkit.decoding: top-k / top-p filtering, greedy feed-back, seeded sampling."""

import pytest
import torch

from rnnkit.decoding import filter_logits, generate, sample_next
from rnnkit.models import LanguageModel


def _model():
    torch.manual_seed(0)
    return LanguageModel(11, embedding_size=4, hidden_size=6, backend="torch")


def test_top_k_and_top_p_keep_the_likeliest_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
    keep = lambda out: torch.isfinite(out)[0].tolist()  # noqa: E731
    assert keep(filter_logits(logits, top_k=2)) == [True, False, True, False]
    assert keep(filter_logits(logits, top_p=0.5)) == [True, False, False, False]
    assert keep(filter_logits(logits, top_p=0.8)) == [True, False, True, False]
    assert keep(filter_logits(logits, top_p=0.81)) == [True, False, True, True]
    with pytest.raises(ValueError, match="top_p must be in"):
        filter_logits(logits, top_p=0.0)


def test_greedy_feeds_each_prediction_back():
    m = _model().eval()
    prompt = torch.tensor([1, 2, 3])
    out = generate(m, prompt, 6, temperature=0.0)
    # the same procedure written out: prime, then argmax and feed back one step at a time
    with torch.no_grad():
        logits, state = m(prompt.view(-1, 1))
        expect = []
        for _ in range(6):
            tok = logits[-1, 0].argmax()
            expect.append(int(tok))
            logits, state = m(tok.view(1, 1), state)
    assert out.tolist() == expect


def test_fixed_seed_sampling_is_reproducible_and_streams():
    m = _model()
    seen = []
    a = generate(m, torch.tensor([4]), 30, temperature=1.5, seed=5, on_token=seen.append)
    b = generate(m, torch.tensor([4]), 30, temperature=1.5, seed=5)
    c = generate(m, torch.tensor([4]), 30, temperature=1.5, seed=6)
    assert a.tolist() == b.tolist() == seen
    assert a.tolist() != c.tolist()


def test_suppressed_tokens_never_appear():
    out = generate(_model(), torch.tensor([4]), 200, temperature=3.0, seed=0, suppress=[0, 1])
    assert not {0, 1} & set(out.tolist())


def test_sample_next_rejects_negative_temperature():
    with pytest.raises(ValueError, match="temperature must be >= 0, got -1"):
        sample_next(torch.zeros(1, 3), temperature=-1)
