// The leaky-integrator RNN cell: v = act(W_ih x + b + W_hh h_prev), h = h_prev + r (v - h_prev),
// with a learned rate per unit r = sigmoid(rate_logit) (the caller passes r). Direction kernels
// only. Included inside an ISA namespace after cells/rnn.h; no headers. Reference twin:
// rnnkit/cells/leaky_rnn_cell.py; tests: tests/test_engine_variants.py.

// sv (H): v = act(a). hn: the new state (before zoneout).
template <typename T, bool RELU>
RK_INLINE void leaky_rnn_fwd(const T* __restrict a, const T* __restrict rate,
                             const T* __restrict h_prev, T* __restrict hn, T* __restrict sv,
                             int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T v = rnn_act<T, RELU>(a[j]);                        // v = act(a)
    sv[j] = v;
    hn[j] = h_prev[j] + rate[j] * (v - h_prev[j]);            // h = (1 - r) h_prev + r v
  }
}

// dg (H): dL/da; d_rate (H) accumulates dL/dr; dh_prev gets the leak path (added).
template <typename T, bool RELU>
RK_INLINE void leaky_rnn_bwd(const T* __restrict sv, const T* __restrict rate,
                             const T* __restrict h_prev, const T* __restrict dhn,
                             T* __restrict dg, T* __restrict dh_prev, T* __restrict d_rate,
                             int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T v = sv[j];
    d_rate[j] += dhn[j] * (v - h_prev[j]);                    // through h = h_prev + r (v - h_prev)
    dh_prev[j] += dhn[j] * (T(1) - rate[j]);
    dg[j] = dhn[j] * rate[j] * rnn_act_grad<T, RELU>(v);      // through v = act(a)
  }
}
