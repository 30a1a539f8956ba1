"""rnnkit: recurrent neural networks on PyTorch.

`import rnnkit as rk`; `rk.LSTM(...)` is a drop-in torch.nn.LSTM with a fused CPU engine.
"""

from rnnkit import (
    export,
    init,
    keras,
)
from rnnkit.cells import (
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LeakyRNNCell,
    PeepholeLSTMCell,
    SkipRNNCell,
)
from rnnkit.layers import (
    GRU,
    IRNN,
    LSTM,
    RNN,
    BinaryTreeLSTM,
    ChildSumTreeLSTM,
    EchoStateNetwork,
    FourDirectionRNN,
    GRUCell,
    LayerNormGRU,
    LayerNormLSTM,
    LeakyRNN,
    LSTMCell,
    PeepholeLSTM,
    RecurrentLayer,
    RNNCell,
    SkipRNN,
    Tree,
    TreeBatch,
    TreeRNN,
    binarize,
    unroll,
)

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "IRNN", "PeepholeLSTM", "LayerNormLSTM", "LayerNormGRU", "LeakyRNN",
    "SkipRNN", "EchoStateNetwork", "FourDirectionRNN", "ChildSumTreeLSTM", "BinaryTreeLSTM",
    "TreeRNN", "Tree", "TreeBatch", "binarize", "RNNCell", "LSTMCell", "GRUCell",
    "PeepholeLSTMCell", "LayerNormLSTMCell",
    "LayerNormGRUCell", "LeakyRNNCell", "SkipRNNCell", "RecurrentLayer", "unroll", "init", "keras",
    "export",
    "__version__",
]
