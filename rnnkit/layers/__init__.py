"""Layer 'layers': sequence layers with torch.nn's contract that run any cell over time, and
the recurrent structures built from them (echo state network, grid sweeps, trees)."""

from rnnkit.layers.base import ENGINES, RecurrentLayer
from rnnkit.layers.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers.esn import EchoStateNetwork
from rnnkit.layers.four_direction import FourDirectionRNN
from rnnkit.layers.rnn import GRU, LSTM, RNN
from rnnkit.layers.scan import unroll
from rnnkit.layers.tree import BinaryTreeLSTM, ChildSumTreeLSTM, Tree, TreeBatch, TreeRNN, binarize
from rnnkit.layers.variants import (
           IRNN,
           LayerNormGRU,
           LayerNormLSTM,
           LeakyRNN,
           PeepholeLSTM,
           SkipRNN,
)

__all__ = ["ENGINES", "RecurrentLayer", "RNN", "LSTM", "GRU", "IRNN", "PeepholeLSTM",
           "LayerNormLSTM", "LayerNormGRU", "LeakyRNN", "SkipRNN", "unroll", "EchoStateNetwork",
           "FourDirectionRNN", "ChildSumTreeLSTM", "BinaryTreeLSTM", "TreeRNN", "Tree", "TreeBatch",
           "binarize", "RNNCell", "LSTMCell", "GRUCell"]
