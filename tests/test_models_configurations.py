"""The classic configurations: many-to-one, aligned many-to-many, one-to-many, each learning a
small task, with padding that never changes a sequence's result."""

from __future__ import annotations

import pytest
import torch

from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.conditional import ConditionalGenerator
from rnnkit.models.tagger import SequenceTagger


def _train(model, loss_fn, steps, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_padding_never_changes_a_sequence_result(pooling):
    model = SequenceClassifier(3, vocab_size=9, input_size=4, hidden_size=5,
                               bidirectional=True, pooling=pooling, num_layers=2).double()
    x = torch.randint(1, 9, (6, 3))
    lengths = torch.tensor([6, 2, 4])
    batch = model(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = model(x[:n, b:b + 1])
        torch.testing.assert_close(batch[b:b + 1], alone)


def test_classifier_learns_which_token_came_first():
    """Many-to-one with the answer at the start: the final state must carry it."""
    g = torch.Generator().manual_seed(0)
    model = SequenceClassifier(2, vocab_size=4, input_size=8, hidden_size=16, cell="gru")

    def batch():
        x = torch.randint(2, 4, (12, 32), generator=g)
        y = torch.randint(0, 2, (32,), generator=g)
        x[0] = y  # tokens 0 or 1 first, then noise tokens 2 and 3
        return x, y

    _train(model, lambda: model.loss(*batch()), 150)
    x, y = batch()
    assert (model(x).argmax(-1) == y).float().mean() > 0.95


def test_classifier_on_real_valued_series():
    model = SequenceClassifier(2, input_size=1, hidden_size=8, pooling="mean")
    x = torch.randn(10, 4, 1)
    assert model(x).shape == (4, 2)
    with pytest.raises(ValueError, match=r"x must be \(T, B, 1\) features"):
        model(torch.randn(10, 4, 3))


def test_tagger_needs_the_right_context():
    """Tag t = the token at t+1: only a bidirectional tagger can know it."""
    g = torch.Generator().manual_seed(1)

    def batch():
        x = torch.randint(0, 5, (10, 32), generator=g)
        return x, torch.cat([x[1:], torch.zeros_like(x[:1])])

    accuracy = {}
    for bidirectional in (True, False):
        model = SequenceTagger(5, vocab_size=5, input_size=8, hidden_size=16, cell="gru",
                               bidirectional=bidirectional)
        _train(model, lambda m=model: m.loss(*batch()), 200)
        x, y = batch()
        accuracy[bidirectional] = (model(x).argmax(-1)[:-1] == y[:-1]).float().mean()
    assert accuracy[True] > 0.95
    assert accuracy[False] < 0.4  # chance is 0.2: the future is out of its reach


def test_tagger_loss_ignores_padding_and_predicts_per_length():
    model = SequenceTagger(3, vocab_size=7, input_size=4, hidden_size=5)
    x = torch.randint(0, 7, (5, 2))
    y = torch.randint(0, 3, (5, 2))
    lengths = torch.tensor([5, 2])
    y_padded = y.clone()
    y_padded[2:, 1] = 2  # garbage past the length must not matter
    torch.testing.assert_close(model.loss(x, y, lengths), model.loss(x, y_padded, lengths))
    assert [len(t) for t in model.predict(x, lengths)] == [5, 2]


def test_conditional_generator_learns_to_count_from_the_condition():
    """One-to-many: v = one-hot digit d; the sequence is d, d+1, ..., d+3 then eos."""
    torch.manual_seed(0)
    bos, eos = 10, 11
    model = ConditionalGenerator(10, vocab_size=12, embedding_size=8, hidden_size=32,
                                 cell="gru")
    digits = torch.arange(6)
    v = torch.eye(10)[digits]
    targets = torch.stack([digits + k for k in range(4)] + [torch.full_like(digits, eos)])
    _train(model, lambda: model.loss(v, targets, bos), 200)
    out = model.generate(v, bos=bos, max_length=8, eos=eos, temperature=0)
    assert out == [[d, d + 1, d + 2, d + 3] for d in range(6)]


def test_conditional_generator_state_comes_from_the_condition():
    model = ConditionalGenerator(3, vocab_size=5, embedding_size=4, hidden_size=6, num_layers=2)
    h, c = model.initial_state(torch.randn(2, 3))
    assert h.shape == c.shape == (2, 2, 6)
    tokens = torch.randint(0, 5, (4, 2))
    a, _ = model(torch.zeros(2, 3), tokens)
    b, _ = model(torch.ones(2, 3), tokens)
    assert not torch.allclose(a, b)
