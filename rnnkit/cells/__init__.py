"""Layer 'cells': the reference cells, plain PyTorch equations behind one protocol.

Every cell maps `(x_t, state) -> state`, with `state` a NamedTuple and `init_state(B)` the zeros.
"""

from rnnkit.cells.base import ParamSpec, RecurrentCell
from rnnkit.cells.gru_cell import GRUCell, GRUState
from rnnkit.cells.layernorm_cells import LayerNormGRUCell, LayerNormLSTMCell
from rnnkit.cells.leaky_rnn_cell import LeakyRNNCell
from rnnkit.cells.lstm_cell import LSTMCell, LSTMState
from rnnkit.cells.peephole_lstm_cell import PeepholeLSTMCell
from rnnkit.cells.rnn_cell import RNNCell, RNNState
from rnnkit.cells.skip_rnn_cell import SkipRNNCell, SkipState

__all__ = [
    "ParamSpec",
    "RecurrentCell",
    "RNNCell",
    "RNNState",
    "LSTMCell",
    "LSTMState",
    "GRUCell",
    "GRUState",
    "PeepholeLSTMCell",
    "LayerNormLSTMCell",
    "LayerNormGRUCell",
    "LeakyRNNCell",
    "SkipRNNCell",
    "SkipState",
]
