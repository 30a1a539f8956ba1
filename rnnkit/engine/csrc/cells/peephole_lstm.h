// The peephole LSTM cell (Gers & Schmidhuber 2000): the LSTM whose input and forget gates also
// see c_prev and whose output gate sees the new c, through diagonal weights p (3H: p_i, p_f,
// p_o). Direction kernels only. Included inside an ISA namespace after activations.h; no
// headers; conventions in cells/rnn.h (CARRY = false). Reference twin:
// rnnkit/cells/peephole_lstm_cell.py; tests: tests/test_engine_variants.py.
//
//   i = s(a_i + p_i c_prev)  f = s(a_f + p_f c_prev)  g = tanh(a_g)
//   c = f c_prev + i g       o = s(a_o + p_o c)       h = o tanh(c)

// sv (6H): i, f, g, o, tanh(c), c. hn, cn: the new state (before zoneout).
template <typename T>
RK_INLINE void peephole_lstm_fwd(const T* __restrict a, const T* __restrict c_prev,
                                 const T* __restrict p, T* __restrict hn, T* __restrict cn,
                                 T* __restrict sv, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T cp = c_prev[j];
    const T i = act_sigmoid(a[j] + p[j] * cp);                   // i = s(a_i + p_i c_prev)
    const T f = act_sigmoid(a[H + j] + p[H + j] * cp);           // f = s(a_f + p_f c_prev)
    const T g = act_tanh(a[2 * H + j]);                          // g = tanh(a_g)
    const T c = f * cp + i * g;                                  // c = f c_prev + i g
    const T o = act_sigmoid(a[3 * H + j] + p[2 * H + j] * c);    // o = s(a_o + p_o c)
    const T tc = act_tanh(c);
    hn[j] = o * tc;                                              // h = o tanh(c)
    cn[j] = c;
    sv[j] = i;
    sv[H + j] = f;
    sv[2 * H + j] = g;
    sv[3 * H + j] = o;
    sv[4 * H + j] = tc;
    sv[5 * H + j] = c;
  }
}

// dg (4H) = dL/d(pre-activations); dc_prev gets its direct terms added; dp (3H) accumulates.
template <typename T>
RK_INLINE void peephole_lstm_bwd(const T* __restrict sv, const T* __restrict c_prev,
                                 const T* __restrict p, const T* __restrict dhn,
                                 const T* __restrict dcn, T* __restrict dg,
                                 T* __restrict dc_prev, T* __restrict dp, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T i = sv[j], f = sv[H + j], g = sv[2 * H + j], o = sv[3 * H + j];
    const T tc = sv[4 * H + j], c = sv[5 * H + j], cp = c_prev[j];
    const T d_ao = dhn[j] * tc * o * (T(1) - o);              // through h = o tanh(c), o = s(.)
    const T dc = dcn[j] + dhn[j] * o * (T(1) - tc * tc)       // through h = o tanh(c)
                 + d_ao * p[2 * H + j];                       // through a_o + p_o c
    const T d_ai = dc * g * i * (T(1) - i);                   // through c = f c_prev + i g
    const T d_af = dc * cp * f * (T(1) - f);
    const T d_ag = dc * i * (T(1) - g * g);                   // through g = tanh(a_g)
    dc_prev[j] += dc * f + (d_ai * p[j] + d_af * p[H + j]);   // through c, a_i + p_i c_prev, a_f
    dp[j] += d_ai * cp;                                       // dp_i
    dp[H + j] += d_af * cp;                                   // dp_f
    dp[2 * H + j] += d_ao * c;                                // dp_o
    dg[j] = d_ai;
    dg[H + j] = d_af;
    dg[2 * H + j] = d_ag;
    dg[3 * H + j] = d_ao;
  }
}
