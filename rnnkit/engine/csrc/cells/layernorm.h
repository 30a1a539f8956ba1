// The row normalisation of the LayerNorm cells (cells/layernorm_lstm.h, cells/layernorm_gru.h)
// and of their x side, forward and backward. Included inside an ISA namespace after
// activations.h; no headers. Tests: tests/test_engine_variants.py (LayerNorm cells).

// LayerNorm of one row u (n): xhat = (u - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased var,
// as torch.nn.functional.layer_norm). Writes xhat, returns rstd. Statistics in double: the
// normalisation and its backward cancel digits, and float32 sums would lose them first.
template <typename T>
RK_INLINE T ln_row(const T* __restrict u, int n, T* __restrict xhat) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; ++j) sum += double(u[j]);
  const double mean = sum / n;
  double sq = 0;
#pragma omp simd reduction(+ : sq)
  for (int j = 0; j < n; ++j) sq += (double(u[j]) - mean) * (double(u[j]) - mean);
  const double rstd = 1.0 / std::sqrt(sq / n + 1e-5);
#pragma omp simd
  for (int j = 0; j < n; ++j) xhat[j] = T((double(u[j]) - mean) * rstd);
  return T(rstd);
}

// Backward of y = xhat * gain + shift through the normalisation: given dyg = dy * gain (n),
// du = rstd * (dyg - mean(dyg) - xhat * mean(dyg * xhat)), written over dyg (in place).
template <typename T>
RK_INLINE void ln_row_back(T* __restrict dyg, const T* __restrict xhat, T rstd, int n) {
  double m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
  for (int j = 0; j < n; ++j) {
    m1 += double(dyg[j]);
    m2 += double(dyg[j]) * double(xhat[j]);
  }
  m1 /= n;
  m2 /= n;
#pragma omp simd
  for (int j = 0; j < n; ++j)
    dyg[j] = T(double(rstd) * (double(dyg[j]) - m1 - double(xhat[j]) * m2));
}

// x side of the LayerNorm cells, all rows at once: u (rows, G) = W x in, a = LN(u) g + s + b1
// (+ b2) out (in place); xhat (rows, G) and rstd (rows) kept for the backward.
template <typename T>
void lnx_fwd(int64_t rows, int G, T* u, T* xhat, T* rstd, const T* g, const T* s, const T* b1,
             const T* b2) {
  for (int64_t r = 0; r < rows; ++r) {
    T* __restrict ur = u + r * G;
    T* __restrict xr = xhat + r * G;
    rstd[r] = ln_row(ur, G, xr);                              // xhat = norm(W x)
#pragma omp simd
    for (int j = 0; j < G; ++j) {
      T v = xr[j] * g[j];                                     // a = xhat g + s + b
      if (s) v += s[j];
      if (b1) v += b1[j];
      if (b2) v += b2[j];
      ur[j] = v;
    }
  }
}

// Backward of lnx_fwd: d (rows, G) = dL/da in, dL/du out (in place); dg, ds accumulate.
template <typename T>
void lnx_bwd(int64_t rows, int G, T* d, const T* xhat, const T* rstd, const T* g, T* dg, T* ds) {
  for (int64_t r = 0; r < rows; ++r) {
    T* __restrict dr = d + r * G;
    const T* __restrict xr = xhat + r * G;
#pragma omp simd
    for (int j = 0; j < G; ++j) {
      dg[j] += dr[j] * xr[j];                                 // through a = xhat g + s
      ds[j] += dr[j];
      dr[j] *= g[j];
    }
    ln_row_back(dr, xr, rstd[r], G);                          // through xhat = norm(W x)
  }
}
