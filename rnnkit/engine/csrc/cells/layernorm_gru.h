// The LayerNorm GRU cell: the GRU of cells/gru.h with LayerNorm (gain, optional shift) on W x
// (done for all steps at once, lnx_fwd in cells/layernorm.h) and on W_hh h_prev before b_hh is
// added. Direction kernels only. Included inside an ISA namespace after cells/gru.h and
// cells/layernorm.h; no headers; conventions in cells/rnn.h (CARRY = false). Reference twin:
// rnnkit/cells/layernorm_cells.py (LayerNormGRUCell); tests: tests/test_engine_variants.py.
//
//   ax = LN(W x) + b_ih     ah = LN(W_hh h_prev) + b_hh     then the GRU's equations

// uh (3H): W_hh h_prev in, LN(W_hh h_prev) out (in place). sv: the GRU's r, z, n, ah_n (4H),
// then hhat (3H) and its rstd.
template <typename T>
RK_INLINE void layernorm_gru_fwd(const T* __restrict ax, T* __restrict uh,
                                 const T* __restrict b_hh, const T* __restrict g_h,
                                 const T* __restrict s_h, const T* h_prev, T* hn,
                                 T* __restrict sv, int H) {
  const int G = 3 * H;
  T* __restrict hhat = sv + 4 * H;
  sv[7 * H] = ln_row(uh, G, hhat);                              // hhat = norm(W_hh h)
  if (s_h) {
#pragma omp simd
    for (int j = 0; j < G; ++j) uh[j] = hhat[j] * g_h[j] + s_h[j];  // LN = hhat g_h + s_h
  } else {
#pragma omp simd
    for (int j = 0; j < G; ++j) uh[j] = hhat[j] * g_h[j];
  }
  gru_fwd<T, true, false>(ax, uh, H, b_hh, h_prev, hn, nullptr, sv, H, H);
}

// dgx (3H) = dL/d ax; dgh (3H) = dL/d(W_hh h_prev); dh_prev gets the direct term added;
// dg_h, ds_h, db_hh (3H) accumulate.
template <typename T>
RK_INLINE void layernorm_gru_bwd(const T* __restrict sv, const T* __restrict h_prev,
                                 const T* __restrict g_h, T* __restrict dhn,
                                 T* __restrict dgx, T* __restrict dgh, T* __restrict dh_prev,
                                 T* __restrict dg_h, T* __restrict ds_h, T* __restrict db_hh,
                                 int H) {
  const int G = 3 * H;
  const T* __restrict hhat = sv + 4 * H;
  gru_bwd<T, false>(sv, h_prev, nullptr, dhn, dgx, dgh, dh_prev, H, H);  // dgh = dL/d ah
#pragma omp simd
  for (int j = 0; j < G; ++j) {
    db_hh[j] += dgh[j];                                   // through ah = LN(.) + b_hh
    dg_h[j] += dgh[j] * hhat[j];                          // through LN = hhat g_h + s_h
    ds_h[j] += dgh[j];
    dgh[j] *= g_h[j];
  }
  ln_row_back(dgh, hhat, sv[7 * H], G);                   // through hhat = norm(W_hh h)
}
