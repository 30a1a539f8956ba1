// The cells the kernels run, by code: the one C++ list, mirrored by the Python table
// rnnkit/engine/cells.py (CODES), where callers name them. The skip RNN has entry points of
// its own (direction_skip.h) and no code.
#pragma once

#include <cstdint>

namespace rk_cells {

enum Cell : int64_t {
  RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3,  // the layer kernels run these four
  LSTM_PEEPHOLE = 4, LSTM_LN = 5, GRU_LN = 6, RNN_LEAKY_TANH = 7, RNN_LEAKY_RELU = 8
};

}  // namespace rk_cells
