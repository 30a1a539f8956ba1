"""Keras-style front ends: return values, go_backwards, initial state, argument checks."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit import keras

B, T, I, H = 3, 5, 2, 4


def test_return_sequences_and_state_shapes_and_values():
    layer = keras.LSTM(H, input_dim=I, return_sequences=True, return_state=True)
    x = torch.randn(B, T, I)
    seq, h, c = layer(x)
    assert seq.shape == (B, T, H) and h.shape == c.shape == (B, H)
    torch.testing.assert_close(seq[:, -1], h)
    last = keras.LSTM(H, input_dim=I)
    last.load_state_dict(layer.state_dict())
    torch.testing.assert_close(last(x), h)


def test_lstm_unit_forget_bias_is_the_keras_default():
    layer = keras.LSTM(H, input_dim=I)
    assert torch.equal(layer.rnn.bias_ih_l0[H:2 * H], torch.ones(H))
    assert not keras.LSTM(H, input_dim=I, unit_forget_bias=False).rnn.bias_ih_l0[H:2 * H].eq(
        1).all()


def test_go_backwards_reads_the_sequence_reversed():
    fwd = keras.GRU(H, input_dim=I, return_sequences=True)
    back = keras.GRU(H, input_dim=I, return_sequences=True, go_backwards=True)
    back.load_state_dict(fwd.state_dict())
    x = torch.randn(B, T, I)
    torch.testing.assert_close(back(x), fwd(x.flip(1)))


def test_go_backwards_with_lengths_starts_at_each_end():
    back = keras.SimpleRNN(H, input_dim=I, go_backwards=True)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([5, 2, 3])
    h = back(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = back(x[b:b + 1, :n])
        torch.testing.assert_close(h[b:b + 1], alone)


def test_initial_state_is_used():
    layer = keras.LSTM(H, input_dim=I)
    x = torch.randn(B, T, I)
    zeros = [torch.zeros(B, H), torch.zeros(B, H)]
    torch.testing.assert_close(layer(x, initial_state=zeros), layer(x))
    assert not torch.allclose(layer(x, initial_state=[torch.ones(B, H), torch.ones(B, H)]),
                              layer(x))


def test_simple_rnn_relu_and_matches_rk_rnn():
    layer = keras.SimpleRNN(H, input_dim=I, activation="relu", use_bias=False)
    ref = rk.RNN(I, H, nonlinearity="relu", bias=False, batch_first=True)
    ref.load_state_dict(layer.rnn.state_dict())
    x = torch.randn(B, T, I)
    torch.testing.assert_close(layer(x), ref(x)[1][0])


def test_input_dropout_only_in_training():
    layer = keras.GRU(H, input_dim=I, dropout=0.5)
    x = torch.randn(B, T, I)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    assert not torch.allclose(layer(x), layer(x))


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "sigmoid"}, "activation must be 'tanh'"),
    ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation must be 'sigmoid'"),
    ({"stateful": True}, "stateful=True is not supported"),
    ({"reset_after": False}, "reset_after=False"),
])
def test_unsupported_keras_options_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras.GRU(H, input_dim=I, **kwargs)


def test_unroll_is_accepted_and_changes_nothing():
    a = keras.LSTM(H, input_dim=I, unroll=True)
    b = keras.LSTM(H, input_dim=I)
    b.load_state_dict(a.state_dict())
    x = torch.randn(B, T, I)
    torch.testing.assert_close(a(x), b(x))
