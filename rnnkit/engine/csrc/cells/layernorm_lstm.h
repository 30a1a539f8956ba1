// The LayerNorm LSTM cell (Ba et al. 2016): LayerNorm on W x and on W_hh h separately (gain and
// optional shift each), and on the new c before its tanh. Direction kernels only. Included
// inside an ISA namespace after cells/layernorm.h; no headers; conventions in cells/rnn.h
// (CARRY = false). Reference twin: rnnkit/cells/layernorm_cells.py (LayerNormLSTMCell); tests:
// tests/test_engine_variants.py.
//
//   a = LN(W x) + LN(W_hh h_prev) + b     i, f, g, o from a as in the LSTM
//   c = f c_prev + i g                    h = o tanh(LN(c))

// LayerNorm LSTM. ax (4H) = LN(W x) g_x + s_x + b_ih + b_hh; uh (4H) = U h_in (raw);
// p: g_h (4H), s_h (4H or null), g_c (H), s_c (H or null).
// sv (10H + 2): i, f, g, o, hhat (4H), chat, tanh(LN(c)), rstd_h, rstd_c.
template <typename T>
RK_INLINE void layernorm_lstm_fwd(const T* __restrict ax, const T* __restrict uh,
                               const T* __restrict g_h, const T* __restrict s_h,
                               const T* __restrict g_c, const T* __restrict s_c,
                               const T* __restrict c_prev, T* __restrict hn, T* __restrict cn,
                               T* __restrict sv, int H) {
  const int G = 4 * H;
  T* __restrict hhat = sv + G;
  T* __restrict chat = sv + 2 * G;
  T* __restrict tlc = sv + 2 * G + H;
  const T rstd_h = ln_row(uh, G, hhat);                           // hhat = norm(U h)
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    T ai = ax[j] + hhat[j] * g_h[j], af = ax[H + j] + hhat[H + j] * g_h[H + j];
    T ag = ax[2 * H + j] + hhat[2 * H + j] * g_h[2 * H + j];
    T ao = ax[3 * H + j] + hhat[3 * H + j] * g_h[3 * H + j];
    if (s_h) {                                                    // + shift of LN(U h)
      ai += s_h[j]; af += s_h[H + j]; ag += s_h[2 * H + j]; ao += s_h[3 * H + j];
    }
    const T i = act_sigmoid(ai), f = act_sigmoid(af), g = act_tanh(ag), o = act_sigmoid(ao);
    cn[j] = f * c_prev[j] + i * g;                                // c = f c_prev + i g
    sv[j] = i;
    sv[H + j] = f;
    sv[2 * H + j] = g;
    sv[3 * H + j] = o;
  }
  const T rstd_c = ln_row(cn, H, chat);                           // chat = norm(c)
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T tc = act_tanh(chat[j] * g_c[j] + (s_c ? s_c[j] : T(0)));
    tlc[j] = tc;
    hn[j] = sv[3 * H + j] * tc;                                   // h = o tanh(LN(c))
  }
  sv[2 * G + 2 * H] = rstd_h;
  sv[2 * G + 2 * H + 1] = rstd_c;
}

// dgx (4H): dL/d(gates) (= dL/d ax); dgh (4H): dL/d(U h_in). dp: dg_h, ds_h (4H), dg_c, ds_c (H).
template <typename T>
RK_INLINE void layernorm_lstm_bwd(const T* __restrict sv, const T* __restrict c_prev,
                               const T* __restrict g_h, const T* __restrict g_c,
                               const T* __restrict dhn, const T* __restrict dcn,
                               T* __restrict dgx, T* __restrict dgh, T* __restrict dc_prev,
                               T* __restrict dg_h, T* __restrict ds_h, T* __restrict dg_c,
                               T* __restrict ds_c, T* __restrict dchat, int H) {
  const int G = 4 * H;
  const T* __restrict hhat = sv + G;
  const T* __restrict chat = sv + 2 * G;
  const T* __restrict tlc = sv + 2 * G + H;
  const T rstd_h = sv[2 * G + 2 * H], rstd_c = sv[2 * G + 2 * H + 1];
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T o = sv[3 * H + j], tc = tlc[j];
    dgx[3 * H + j] = dhn[j] * tc * o * (T(1) - o);          // through h = o tanh(LN(c)), o = s(.)
    const T d_lc = dhn[j] * o * (T(1) - tc * tc);           // through tanh(LN(c))
    dg_c[j] += d_lc * chat[j];                              // through LN(c) = chat g_c + s_c
    ds_c[j] += d_lc;
    dchat[j] = d_lc * g_c[j];
  }
  ln_row_back(dchat, chat, rstd_c, H);                      // through chat = norm(c)
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T i = sv[j], f = sv[H + j], g = sv[2 * H + j];
    const T dc = dcn[j] + dchat[j];
    dgx[j] = dc * g * i * (T(1) - i);                       // through c = f c_prev + i g, i = s(.)
    dgx[H + j] = dc * c_prev[j] * f * (T(1) - f);           // through f = s(.)
    dgx[2 * H + j] = dc * i * (T(1) - g * g);               // through g = tanh(.)
    dc_prev[j] += dc * f;                                   // through c = f c_prev + i g
  }
#pragma omp simd
  for (int j = 0; j < G; ++j) {
    dg_h[j] += dgx[j] * hhat[j];                            // through LN(U h) = hhat g_h + s_h
    ds_h[j] += dgx[j];
    dgh[j] = dgx[j] * g_h[j];
  }
  ln_row_back(dgh, hhat, rstd_h, G);                        // through hhat = norm(U h)
}
