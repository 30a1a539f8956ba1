"""The cells the engine runs, by name, with the integer codes its C++ side uses.

This table is the one place the codes live on the Python side; they mirror `enum Cell` in
csrc/cells.h, the C++ side's one copy. A caller names the cell; the engine looks the code up.
"""

from __future__ import annotations

__all__ = ["CODES", "LAYER_CELLS", "DIRECTION_CELLS", "TWO_FIELD_CELLS", "code"]

#: cell name -> the kernels' code
CODES: dict[str, int] = {
    "RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3,
    "LSTM_PEEPHOLE": 4, "LSTM_LN": 5, "GRU_LN": 6, "RNN_LEAKY_TANH": 7, "RNN_LEAKY_RELU": 8,
}

#: the cells `fused_layer` runs (all directions of a layer in one call, no regularisers)
LAYER_CELLS = frozenset({"RNN_TANH", "RNN_RELU", "LSTM", "GRU"})

#: the cells `fused_direction` runs (one direction, with recurrent dropout and zoneout);
#: the skip RNN has its own entry point, `skip_direction`, and is named "RNN_SKIP"
DIRECTION_CELLS = frozenset(CODES) | {"RNN_SKIP"}

#: cells whose state has a second field (c for the LSTM family, the past for the skip RNN)
TWO_FIELD_CELLS = frozenset({"LSTM", "LSTM_PEEPHOLE", "LSTM_LN", "RNN_SKIP"})


def code(cell: str) -> int:
    """The kernels' code for `cell`; ValueError naming the known cells otherwise."""
    try:
        return CODES[cell]
    except KeyError:
        raise ValueError(f"the engine has no cell {cell!r}; expected one of "
                         f"{sorted(CODES)}") from None
