"""Layer 'layers': sequence layers with torch.nn's contract that run any cell over time."""

from rnnkit.layers.base import ENGINES, RecurrentLayer
from rnnkit.layers.rnn import GRU, LSTM, RNN
from rnnkit.layers.scan import unroll
from rnnkit.layers.variants import (
           IRNN,
           LayerNormGRU,
           LayerNormLSTM,
           LeakyRNN,
           PeepholeLSTM,
           SkipRNN,
)

__all__ = ["ENGINES", "RecurrentLayer", "RNN", "LSTM", "GRU", "IRNN", "PeepholeLSTM",
           "LayerNormLSTM", "LayerNormGRU", "LeakyRNN", "SkipRNN", "unroll"]
