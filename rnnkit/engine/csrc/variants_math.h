// Activations and per-row LayerNorm helpers of the variant kernels (included inside an ISA
// namespace by variants_rows.h's includer; must not include headers).
//
// float: branch-free exp so the row loops vectorise (accurate to a few ulp); tanh from a Taylor
// series near 0 (no cancellation) and from exp elsewhere. double: libm, for 1e-10 agreement.

RK_INLINE float v_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float big = 12582912.0f;                        // 1.5 * 2^23: rounds to an integer
  const float n = (x * 1.4426950408889634f + big) - big; // n = round(x / ln 2)
  float r = x - n * 0.693359375f;                        // r = x - n ln 2 (ln 2 in two parts)
  r = r + n * 2.12194440e-4f;
  float p = 1.0f / 40320.0f;                             // exp(r), |r| <= ln 2 / 2: Taylor to r^8
  p = p * r + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

RK_INLINE float v_sigmoid(float x) { return 1.0f / (1.0f + v_exp(-x)); }

RK_INLINE float v_tanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float u = x * x;                                 // |x| < 0.5: Taylor series to x^15
  float p = -0.0014558343f;
  p = p * u + 0.0035921280f;
  p = p * u - 0.0088632355f;
  p = p * u + 0.0218694885f;
  p = p * u - 0.0539682540f;
  p = p * u + 0.1333333333f;
  p = p * u - 0.3333333333f;
  p = p * u + 1.0f;
  const float small = x * p;
  float large = 1.0f - 2.0f / (v_exp(2.0f * ax) + 1.0f); // tanh|x| = 1 - 2 / (e^{2|x|} + 1)
  large = x < 0.0f ? -large : large;
  return ax < 0.5f ? small : large;
}

RK_INLINE double v_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
RK_INLINE double v_tanh(double x) { return std::tanh(x); }

// Forward activation of an RNN unit, and its derivative from the output v = act(a).
template <typename T>
RK_INLINE T v_act(bool relu, T a) { return relu ? (a > T(0) ? a : T(0)) : v_tanh(a); }
template <typename T>
RK_INLINE T v_act_grad(bool relu, T v) { return relu ? (v > T(0) ? T(1) : T(0)) : T(1) - v * v; }

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
