"""Layer 'cells': the reference cells, plain PyTorch equations behind one protocol.

Every cell maps `(x_t, state) -> state`, with `state` a NamedTuple and `init_state(B)` the zeros.
"""

from rnnkit.cells.base import ParamSpec, RecurrentCell
from rnnkit.cells.gru_cell import GRUCell, GRUState
from rnnkit.cells.lstm_cell import LSTMCell, LSTMState
from rnnkit.cells.rnn_cell import RNNCell, RNNState

__all__ = [
    "ParamSpec",
    "RecurrentCell",
    "RNNCell",
    "RNNState",
    "LSTMCell",
    "LSTMState",
    "GRUCell",
    "GRUState",
]
