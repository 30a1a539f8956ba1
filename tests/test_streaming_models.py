"""model.step: the task models fed an unbounded stream one step at a time equal their forward
on the whole sequence, in memory that does not grow; a bidirectional model refuses to stream."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from rnnkit.models import (
    ConditionalGenerator,
    Forecaster,
    LanguageModel,
    PianoRollModel,
    SequenceTagger,
)

T, B = 10_000, 2
TOL = dict(rtol=1e-9, atol=1e-10)  # float64: a stream of 10,000 steps drifts by far less


def _fields(state):
    return state if isinstance(state, tuple) else (state,)


def _stream(step, inputs):
    """Feed `inputs` one step at a time; returns the stacked outputs and the final state."""
    state, outs = None, []
    for x_t in inputs:
        y, state = step(x_t, state)
        outs.append(y)
    return torch.stack(outs), state


@pytest.mark.parametrize("backend, steps", [("rnnkit", T), ("torch", 1_000)])
def test_language_model_stream_equals_forward(backend, steps):
    model = LanguageModel(11, embedding_size=4, hidden_size=6, num_layers=2,
                          backend=backend).double().eval()
    tokens = torch.randint(0, 11, (steps, B), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole, final = model(tokens)  # (T, B, V)
        steps, state = _stream(model.step, tokens)
    torch.testing.assert_close(steps, whole, **TOL)
    for a, b in zip(_fields(state), _fields(final), strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_forecaster_stream_gives_the_forecast_of_every_prefix():
    model = Forecaster(2, horizon=3, hidden_size=5, cell="gru").double().eval()
    model.fit_scaler(torch.randn(50, 2, dtype=torch.float64) * 3 + 1)
    x = torch.randn(T, B, 2, dtype=torch.float64)
    with torch.no_grad():
        steps, _ = _stream(model.step, x)  # (T, B, horizon, F)
        for t in (0, 1, 4_999, T - 1):  # forward on x_1..x_t forecasts after step t
            torch.testing.assert_close(steps[t], model(x[: t + 1]), **TOL)


def test_piano_roll_stream_equals_forward():
    model = PianoRollModel(num_keys=5, hidden_size=7, num_layers=2, cell="rnn").double().eval()
    x = torch.bernoulli(torch.full((T, B, 5), 0.3, dtype=torch.float64))
    with torch.no_grad():
        steps, _ = _stream(model.step, x)
        torch.testing.assert_close(steps, model(x), **TOL)


@pytest.mark.parametrize("every_step, steps", [(True, T), (False, 1_000)])
def test_conditional_generator_stream_starts_from_the_condition(every_step, steps):
    model = ConditionalGenerator(3, vocab_size=9, embedding_size=4, hidden_size=6,
                                 condition_every_step=every_step).double().eval()
    v = torch.randn(B, 3, dtype=torch.float64)
    tokens = torch.randint(0, 9, (steps, B), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole, final = model(v, tokens)
        steps, state = _stream(lambda tok, s: model.step(v, tok, s), tokens)
    torch.testing.assert_close(steps, whole, **TOL)
    for a, b in zip(_fields(state), _fields(final), strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_unidirectional_tagger_streams_tags():
    model = SequenceTagger(4, input_size=3, hidden_size=5, bidirectional=False).double().eval()
    x = torch.randn(300, B, 3, dtype=torch.float64)
    with torch.no_grad():
        steps, _ = _stream(model.step, x)
        torch.testing.assert_close(steps, model(x), **TOL)


def test_state_keeps_its_size_holds_no_graph_and_old_states_are_freed():
    model = LanguageModel(11, embedding_size=4, hidden_size=6, num_layers=2).eval()
    tokens = torch.randint(0, 11, (3_000,), generator=torch.Generator().manual_seed(3))
    state, first, live, old = None, None, None, []
    with torch.no_grad():
        for t, tok in enumerate(tokens):
            _, state = model.step(tok.expand(B), state)
            fields = _fields(state)
            sizes = [(f.shape, f.untyped_storage().nbytes()) for f in fields]
            if first is None:
                first = sizes
            assert sizes == first, f"the state grew at step {t}: {sizes} vs {first}"
            assert all(f.grad_fn is None and not f.requires_grad for f in fields)
            if t in (1_000, 2_999):
                old.append([weakref.ref(f) for f in fields])
                gc.collect()
                n = sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())
                assert live is None or n <= live, f"{n - live} more live tensors than at 1,000"
                live = n
    assert all(r() is None for r in old[0]), "a state from 2,000 steps back is still alive"


def test_gradients_flow_through_steps_with_the_sequence_gradients():
    model = LanguageModel(7, embedding_size=3, hidden_size=4).double()
    tokens = torch.randint(0, 7, (6, B), generator=torch.Generator().manual_seed(4))
    g_whole = torch.autograd.grad(model(tokens)[0].sum(), list(model.parameters()))
    steps, _ = _stream(model.step, tokens)
    g_steps = torch.autograd.grad(steps.sum(), list(model.parameters()))
    for a, b in zip(g_steps, g_whole, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_unbatched_step_is_one_row_of_a_batch():
    model = LanguageModel(7, embedding_size=3, hidden_size=4, num_layers=2).double().eval()
    with torch.no_grad():
        one, s1 = model.step(torch.tensor(3))
        one, s1 = model.step(torch.tensor(5), s1)
        row, s2 = model.step(torch.tensor([3]))
        row, s2 = model.step(torch.tensor([5]), s2)
    assert one.shape == (7,) and s1[0].shape == (2, 4)
    torch.testing.assert_close(one, row[0], **TOL)


@pytest.mark.parametrize("make, x_t", [
    (lambda: SequenceTagger(4, input_size=3, hidden_size=5), torch.randn(B, 3)),
    (lambda: PianoRollModel(num_keys=5, hidden_size=7, bidirectional=True, backend="torch"),
     torch.zeros(B, 5)),
], ids=["tagger", "piano_roll_torch_backend"])
def test_bidirectional_model_refuses_to_stream_and_says_why(make, x_t):
    with pytest.raises(ValueError, match=r"step\(\) streams forward in time, but this model's "
                                         r"recurrent layer is bidirectional: its reverse "
                                         r"direction starts from each sequence's last step"):
        make().step(x_t)


def test_bad_steps_name_what_was_expected():
    lm = LanguageModel(7, embedding_size=3, hidden_size=4)
    with pytest.raises(ValueError, match=r"token must be one step of token ids, \(B,\) or 0-d "
                                         r"integers, got \(5, 2\) torch.int64"):
        lm.step(torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got \(2,\) torch.float32"):
        lm.step(torch.zeros(2))
    with pytest.raises(ValueError, match=r"x_t must be one step, \(B, 2\) or \(2,\), got "
                                         r"\(4, 3\)"):
        Forecaster(2, hidden_size=4).step(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"frame must be one step, \(B, 5\) or \(5,\), got "
                                         r"\(3, 2, 5\)"):
        PianoRollModel(num_keys=5, hidden_size=4).step(torch.zeros(3, 2, 5))
    gen = ConditionalGenerator(3, vocab_size=9, embedding_size=4, hidden_size=6)
    with pytest.raises(ValueError, match=r"got v \(2, 3\), token \(3,\) torch.int64"):
        gen.step(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
