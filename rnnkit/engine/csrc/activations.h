// The activations every kernel uses, one set for the whole engine. Included inside each ISA
// namespace (isa_avx512, isa_avx2, isa_base) before the row files, so each set compiles for its
// vector width; must not include headers.
//
// float: branch-free exp (Cody-Waite reduction, degree-7 Taylor, exponent by bit shift), so the
// gate loops vectorise; accurate to a few float32 ulp. double: libm, for 1e-10 agreement.

RK_INLINE float act_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shift = 12582912.0f;                         // 1.5 * 2^23: round to nearest
  float n = (x * 1.44269504088896341f + shift) - shift;    // n = round(x / ln 2)
  float r = x - n * 0.693359375f;                          // r = x - n ln 2, in two parts
  r = r + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;    // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

RK_INLINE float act_sigmoid(float x) { return 1.0f / (1.0f + act_exp(-x)); }

RK_INLINE float act_tanh(float x) {
  // |x| < 0.6: odd polynomial fitted to tanh(x)/x (relative error ~1e-7);
  // else 1 - 2 / (exp(2|x|) + 1) with the sign of x.
  const float u = x * x;
  float p = -0.005899491719901562f;
  p = p * u + 0.02079838700592518f;
  p = p * u - 0.05378381907939911f;
  p = p * u + 0.13331905007362366f;
  p = p * u - 0.33333295583724976f;
  p = p * u + 1.0f;
  const float small = x * p;
  const float ax = x < 0.0f ? -x : x;
  float big = 1.0f - 2.0f / (act_exp(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < 0.6f ? small : big;
}

RK_INLINE double act_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
RK_INLINE double act_tanh(double x) { return std::tanh(x); }

template <typename T>
RK_INLINE T act_relu(T x) { return x > T(0) ? x : T(0); }

// Forward activation of an RNN unit, and its derivative from the output v = act(a).
template <typename T>
RK_INLINE T act_unit(bool relu, T a) { return relu ? act_relu(a) : act_tanh(a); }
template <typename T>
RK_INLINE T act_unit_grad(bool relu, T v) { return relu ? (v > T(0) ? T(1) : T(0)) : T(1) - v * v; }
