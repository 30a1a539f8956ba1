// Per-row LayerNorm helpers of the direction kernels (included inside an ISA namespace after
// activations.h; must not include headers).

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
