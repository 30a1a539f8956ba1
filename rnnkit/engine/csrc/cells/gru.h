// The GRU cell (gates r, z, n in that order, as torch.nn.GRU): its forward and backward over one
// row of units, for the layer kernels, the direction kernels and the LayerNorm GRU
// (cells/layernorm_gru.h). Included inside an ISA namespace after activations.h; no headers;
// conventions (n, H, CARRY) in cells/rnn.h. Reference twin: rnnkit/cells/gru_cell.py; tests:
// tests/test_engine.py, test_engine_threads.py, test_engine_isa.py, test_engine_variants.py.
//
//   r = s(ax_r + ah_r)   z = s(ax_z + ah_z)   n = tanh(ax_n + r ah_n)   h = (1 - z) n + z h_prev
//   ax = W_ih x + b_ih,  ah = W_hh h_prev + b_hh

// a (3 gates, H apart): ax. gh: W_hh h_prev without its bias, gates ghs apart; b_hh: its bias.
// h_prev may be h itself. With KEEP, save (4H) receives r, z, n and ah_n for the backward.
template <typename T, bool KEEP, bool OUT>
RK_INLINE void gru_fwd(const T* __restrict a, const T* __restrict gh, int ghs,
                       const T* __restrict b_hh, const T* h_prev, T* h, T* __restrict out,
                       T* __restrict save, int n, int H) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T br = b_hh[j], bz = b_hh[H + j], bn = b_hh[2 * H + j];
    const T r = act_sigmoid(a[j] + gh[j] + br);              // r = s(ax_r + ah_r)
    const T z = act_sigmoid(a[H + j] + gh[ghs + j] + bz);    // z = s(ax_z + ah_z)
    const T hn = gh[2 * ghs + j] + bn;                       // ah_n
    const T nn = act_tanh(a[2 * H + j] + r * hn);            // n = tanh(ax_n + r ah_n)
    const T hnew = (T(1) - z) * nn + z * h_prev[j];          // h = (1 - z) n + z h_prev
    if (KEEP) {
      save[j] = r;
      save[H + j] = z;
      save[2 * H + j] = nn;
      save[3 * H + j] = hn;
    }
    h[j] = hnew;
    if (OUT) out[j] = hnew;
  }
}

// save: r, z, n, ah_n. dgx (3H) = dL/d ax, dgh (3H) = dL/d ah (they differ in the n gate only).
// CARRY: dh is carried in and left holding the direct dL/dh_prev (dh_prev unused). Otherwise
// the direct dL/dh_prev is added to dh_prev.
template <typename T, bool CARRY>
RK_INLINE void gru_bwd(const T* __restrict save, const T* __restrict h_prev,
                       const T* __restrict dout, T* __restrict dh, T* __restrict dgx,
                       T* __restrict dgh, T* __restrict dh_prev, int n, int H) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T r = save[j], z = save[H + j], nn = save[2 * H + j], hn = save[3 * H + j];
    const T dh_t = CARRY ? dh[j] + dout[j] : dh[j];     // h feeds the output and step t + 1
    const T d_n = dh_t * (T(1) - z);                    // through h = (1 - z) n + z h_prev
    const T d_z = dh_t * (h_prev[j] - nn);              // through h = (1 - z) n + z h_prev
    const T d_an = d_n * (T(1) - nn * nn);              // through n = tanh(.)
    const T d_hn = d_an * r;                            // through ax_n + r ah_n
    const T d_r = d_an * hn;                            // through ax_n + r ah_n
    const T d_ar = d_r * r * (T(1) - r);                // through r = s(.)
    const T d_az = d_z * z * (T(1) - z);                // through z = s(.)
    dgx[j] = d_ar;
    dgx[H + j] = d_az;
    dgx[2 * H + j] = d_an;
    dgh[j] = d_ar;
    dgh[H + j] = d_az;
    dgh[2 * H + j] = d_hn;
    if (CARRY) {
      dh[j] = dh_t * z;                                 // direct path; the GEMM adds the rest
    } else {
      dh_prev[j] += dh_t * z;
    }
  }
}
