"""rnnkit: recurrent neural networks on PyTorch.

`import rnnkit as rk`; `rk.LSTM(...)` is a drop-in torch.nn.LSTM with a fused CPU engine.
"""

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer, unroll

__version__ = "0.1.0"

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RecurrentLayer", "unroll",
           "__version__"]
