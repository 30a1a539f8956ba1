// Zoneout (Krueger et al. 2017) on one state field, forward and backward: the option the
// direction kernels' row pass applies after a cell's row (cells/*.h) computes the candidate
// state. Recurrent dropout needs no row code: the drivers multiply h by its mask before the step
// product. Included inside an ISA namespace; no headers. Tests: tests/test_engine_variants.py,
// tests/test_regularisers.py.

// Zoneout on one state field: state <- mask ? state : cand (training), or
// state <- rate * state + (1 - rate) * cand (evaluation), or state <- cand (off).
template <typename T>
RK_INLINE void zone_mix(T* __restrict state, const T* __restrict cand,
                        const uint8_t* __restrict mask, T rate, int H) {
  if (mask) {
#pragma omp simd
    for (int j = 0; j < H; ++j) state[j] = mask[j] ? state[j] : cand[j];
  } else if (rate > T(0)) {
#pragma omp simd
    for (int j = 0; j < H; ++j) state[j] = rate * state[j] + (T(1) - rate) * cand[j];
  } else {
    std::memcpy(state, cand, sizeof(T) * H);
  }
}

// Backward of zone_mix: d_cand = d * (1 - m), and the carried gradient of the old state is
// set to d * m (the cell's backward then adds its own paths to it).
template <typename T>
RK_INLINE void zone_back(T* __restrict d_state, T* __restrict d_cand,
                         const uint8_t* __restrict mask, T rate, int H) {
  if (mask) {
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      d_cand[j] = mask[j] ? T(0) : d_state[j];
      d_state[j] = mask[j] ? d_state[j] : T(0);
    }
  } else {
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      d_cand[j] = (T(1) - rate) * d_state[j];
      d_state[j] = rate * d_state[j];
    }
  }
}
