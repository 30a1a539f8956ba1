// The Elman RNN cell, h = act(W_ih x + b_ih + W_hh h_prev + b_hh), act = tanh or ReLU: its
// forward and backward over one row of units. The layer kernels and the direction kernels
// (regularised runs) both call these. Included inside an ISA namespace after activations.h; no
// headers. Reference twin: rnnkit/cells/rnn_cell.py; tests: tests/test_engine.py,
// test_engine_threads.py, test_engine_isa.py (layer kernels, every schedule and ISA, against the
// reference and torch.nn) and tests/test_engine_variants.py (direction kernels).
//
// Conventions of every cell file: a row function runs over `n` units (all H, or one thread's
// slice with every pointer moved to the slice's first unit); H is the stride between gates.
// Backward functions with CARRY = true take the gradient carried from step t + 1 in `dh`, add the
// output's gradient `dout` themselves, and leave in `dh` (and `dc`) what step t - 1 receives
// before the step GEMM adds `dG W_hh` (the layer kernels). With CARRY = false `dh` (and `dc`)
// hold the whole gradient of the step's new state and the cell ADDS its direct terms to
// `dh_prev` (`dc_prev`), which the caller preset (the direction kernels, whose zoneout splits
// the gradient first).

template <typename T, bool RELU>
RK_INLINE T rnn_act(T a) { return RELU ? act_relu(a) : act_tanh(a); }

// d act / d a, from the output v = act(a).
template <typename T, bool RELU>
RK_INLINE T rnn_act_grad(T v) { return RELU ? (v > T(0) ? T(1) : T(0)) : T(1) - v * v; }

// a: pre-activations. v = act(a) goes to `save` (may be `a` itself), `h` and, with OUT, `out`.
template <typename T, bool RELU, bool OUT>
RK_INLINE void rnn_fwd(const T* a, T* save, T* __restrict h, T* __restrict out, int n) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T v = rnn_act<T, RELU>(a[j]);                 // h = act(a)
    save[j] = v;
    h[j] = v;
    if (OUT) out[j] = v;
  }
}

// v: the saved act(a). dg = dL/da.
template <typename T, bool RELU, bool CARRY>
RK_INLINE void rnn_bwd(const T* __restrict v, const T* __restrict dout, T* __restrict dh,
                       T* __restrict dg, int n) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T dh_t = CARRY ? dh[j] + dout[j] : dh[j];     // h feeds the output and step t + 1
    dg[j] = dh_t * rnn_act_grad<T, RELU>(v[j]);        // through h = act(a)
    if (CARRY) dh[j] = T(0);
  }
}
