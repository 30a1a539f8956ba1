// Per-row forward and backward of the GRU family (plain GRU with regularisers, LayerNorm GRU)
// and of the RNN family (tanh/ReLU RNN with regularisers, leaky-integrator RNN). Included
// inside an ISA namespace; no headers. Conventions as in direction_lstm_rows.h.

// GRU (LN = false) or LayerNorm GRU. ax (3H): W x + b_ih (LN: LN(W x) g_x + s_x + b_ih);
// uh (3H): U h_in. p: b_hh (3H, never null), LN: g_h, s_h (3H or null).
// sv: r, z, n, ah_n (4H); LN adds hhat (3H) and rstd_h.
template <typename T, bool LN>
RK_INLINE void gru_fwd_row(const T* __restrict ax, const T* __restrict uh,
                           const T* __restrict b_hh, const T* __restrict g_h,
                           const T* __restrict s_h, const T* __restrict h_prev,
                           T* __restrict hn, T* __restrict sv, int H) {
  const int G = 3 * H;
  T* __restrict hhat = sv + 4 * H;
  T rstd = 0;
  if (LN) rstd = ln_row(uh, G, hhat);                            // hhat = norm(U h)
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    T hr = uh[j], hz = uh[H + j], hh = uh[2 * H + j];
    if (LN) {                                                   // a_h = LN(U h) + b_hh
      hr = hhat[j] * g_h[j];
      hz = hhat[H + j] * g_h[H + j];
      hh = hhat[2 * H + j] * g_h[2 * H + j];
      if (s_h) { hr += s_h[j]; hz += s_h[H + j]; hh += s_h[2 * H + j]; }
    }
    hr += b_hh[j];
    hz += b_hh[H + j];
    hh += b_hh[2 * H + j];
    const T r = act_sigmoid(ax[j] + hr);                          // r = s(ax_r + ah_r)
    const T z = act_sigmoid(ax[H + j] + hz);                      // z = s(ax_z + ah_z)
    const T n = act_tanh(ax[2 * H + j] + r * hh);                 // n = tanh(ax_n + r ah_n)
    hn[j] = (T(1) - z) * n + z * h_prev[j];                     // h = (1 - z) n + z h_prev
    sv[j] = r;
    sv[H + j] = z;
    sv[2 * H + j] = n;
    sv[3 * H + j] = hh;
  }
  if (LN) sv[7 * H] = rstd;
}

// dgx (3H): dL/d ax; dgh (3H): dL/d(U h_in). LN: dp = dg_h, ds_h, db_hh (3H) accumulate.
template <typename T, bool LN>
RK_INLINE void gru_bwd_row(const T* __restrict sv, const T* __restrict h_prev,
                           const T* __restrict g_h, const T* __restrict dhn,
                           T* __restrict dgx, T* __restrict dgh, T* __restrict dh_prev,
                           T* __restrict dg_h, T* __restrict ds_h, T* __restrict db_hh, int H) {
  const int G = 3 * H;
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T r = sv[j], z = sv[H + j], n = sv[2 * H + j], hh = sv[3 * H + j];
    const T d_an = dhn[j] * (T(1) - z) * (T(1) - n * n);    // through h = (1-z) n + z h_prev, tanh
    const T d_az = dhn[j] * (h_prev[j] - n) * z * (T(1) - z);  // through h = ..., z = s(.)
    const T d_ar = d_an * hh * r * (T(1) - r);              // through ax_n + r ah_n, r = s(.)
    dgx[j] = d_ar;
    dgx[H + j] = d_az;
    dgx[2 * H + j] = d_an;
    dgh[j] = d_ar;
    dgh[H + j] = d_az;
    dgh[2 * H + j] = d_an * r;                              // through ax_n + r ah_n
    dh_prev[j] += dhn[j] * z;                               // through z h_prev
  }
  if (LN) {
    const T* __restrict hhat = sv + 4 * H;
#pragma omp simd
    for (int j = 0; j < G; ++j) {
      db_hh[j] += dgh[j];                                   // through a_h = LN(U h) + b_hh
      dg_h[j] += dgh[j] * hhat[j];                          // through LN(U h) = hhat g_h + s_h
      ds_h[j] += dgh[j];
      dgh[j] *= g_h[j];
    }
    ln_row_back(dgh, hhat, sv[7 * H], G);                   // through hhat = norm(U h)
  }
}

// RNN (LEAKY = false) or leaky RNN. a (H): W x + b + U h_in. rate (H): a = s(rate_logit).
// sv (H): v = act(a).
template <typename T, bool LEAKY>
RK_INLINE void rnn_fwd_row(bool relu, const T* __restrict a, const T* __restrict rate,
                           const T* __restrict h_prev, T* __restrict hn, T* __restrict sv,
                           int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T v = act_unit(relu, a[j]);                          // v = act(a)
    sv[j] = v;
    hn[j] = LEAKY ? h_prev[j] + rate[j] * (v - h_prev[j]) : v;  // h = (1 - a) h_prev + a v
  }
}

// dg (H): dL/da. Leaky: d_rate (H) accumulates dL/d(rate), dh_prev gets the leak path.
template <typename T, bool LEAKY>
RK_INLINE void rnn_bwd_row(bool relu, const T* __restrict sv, const T* __restrict rate,
                           const T* __restrict h_prev, const T* __restrict dhn,
                           T* __restrict dg, T* __restrict dh_prev, T* __restrict d_rate, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T v = sv[j];
    T dv = dhn[j];
    if (LEAKY) {
      dv = dhn[j] * rate[j];                                // through h = h_prev + a (v - h_prev)
      d_rate[j] += dhn[j] * (v - h_prev[j]);
      dh_prev[j] += dhn[j] * (T(1) - rate[j]);
    }
    dg[j] = dv * act_unit_grad(relu, v);                       // through v = act(a)
  }
}
