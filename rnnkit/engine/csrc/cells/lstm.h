// The LSTM cell (gates i, f, g, o in that order, as torch.nn.LSTM): its forward and backward over
// one row of units, for the layer kernels and the direction kernels alike. Included inside an ISA
// namespace after activations.h; no headers; conventions (n, H, CARRY) in cells/rnn.h.
// Reference twin: rnnkit/cells/lstm_cell.py; tests: tests/test_engine.py, test_engine_threads.py,
// test_engine_isa.py, tests/test_engine_variants.py (with recurrent dropout and zoneout).
//
//   i = s(a_i)  f = s(a_f)  g = tanh(a_g)  o = s(a_o)      a = W_ih x + b_ih + W_hh h + b_hh
//   c = f c_prev + i g      h = o tanh(c)

// a (4 gates, H apart): pre-activations. With KEEP, the gate activations go to `gates` (may be
// `a` itself) and tanh(c) to `tanh_c`, for the backward. c_new may be c_prev itself; `out`
// (with OUT) receives h too.
template <typename T, bool KEEP, bool OUT>
RK_INLINE void lstm_fwd(const T* a, T* gates, const T* c_prev, T* c_new, T* __restrict h,
                        T* __restrict out, T* __restrict tanh_c, int n, int H) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T i = act_sigmoid(a[j]);
    const T f = act_sigmoid(a[H + j]);
    const T g = act_tanh(a[2 * H + j]);
    const T o = act_sigmoid(a[3 * H + j]);
    const T cn = f * c_prev[j] + i * g;                 // c = f c_prev + i g
    const T tc = act_tanh(cn);
    const T hn = o * tc;                                // h = o tanh(c)
    if (KEEP) {
      gates[j] = i;
      gates[H + j] = f;
      gates[2 * H + j] = g;
      gates[3 * H + j] = o;
      tanh_c[j] = tc;
    }
    c_new[j] = cn;
    h[j] = hn;
    if (OUT) out[j] = hn;
  }
}

// gates, tanh_c: saved by the forward; dg (4H) = dL/d(pre-activations). CARRY: dc is carried in
// and left holding dL/dc_prev (dc_prev unused). Otherwise dL/dc_prev is added to dc_prev.
template <typename T, bool CARRY>
RK_INLINE void lstm_bwd(const T* __restrict gates, const T* __restrict c_prev,
                        const T* __restrict tanh_c, const T* __restrict dout, T* __restrict dh,
                        T* __restrict dc, T* __restrict dc_prev, T* __restrict dg, int n,
                        int H) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
    const T tc = tanh_c[j];
    const T dh_t = CARRY ? dh[j] + dout[j] : dh[j];     // h feeds the output and step t + 1
    const T d_o = dh_t * tc;                            // through h = o tanh(c)
    const T dc_t = dc[j] + dh_t * o * (T(1) - tc * tc); // through h = o tanh(c)
    const T d_i = dc_t * g;                             // through c = f c_prev + i g
    const T d_g = dc_t * i;
    const T d_f = dc_t * c_prev[j];
    if (CARRY) {
      dc[j] = dc_t * f;                                 // dc_prev, through c = f c_prev + ...
      dh[j] = T(0);
    } else {
      dc_prev[j] += dc_t * f;
    }
    dg[j] = d_i * i * (T(1) - i);                       // through i = s(a_i)
    dg[H + j] = d_f * f * (T(1) - f);                   // through f = s(a_f)
    dg[2 * H + j] = d_g * (T(1) - g * g);               // through g = tanh(a_g)
    dg[3 * H + j] = d_o * o * (T(1) - o);               // through o = s(a_o)
  }
}
