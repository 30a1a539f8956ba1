// The register-blocked product against a matrix stored with its output dimension first:
// c (B, N) (+)= a (B, K) w^T, w (N, K) row-major (torch's weight layout), so a call of one or
// two steps needs neither a transposed copy of the weights nor a BLAS call (whose set-up cost
// exceeds the product itself at a few rows: MKL took 8 us for (1 x 128) x (128 x 512) on an AMD
// EPYC). Each output is a dot product along K: a block of RB rows of a times NB rows of w keeps
// RB * NB vectors of partial sums, walks K one vector at a time (every row of w read once, in
// order, for the whole block), then sums each vector's lanes. Included inside each per-ISA
// namespace (see per_isa.h), after step_mm.h: no include guard and no includes.

template <typename T, int RB, int NB>
RK_INLINE void nt_block(int K, const T* __restrict a, int lda, const T* __restrict w, int ldw,
                        T* __restrict c, int ldc, bool accumulate) {
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T));
  // GCC's vector type, indexed by constants once the loops unroll, so the RB * NB partial sums
  // can stay in registers: the same loops over arrays of scalars under `omp simd` ran 2x
  // slower at 8 rows (an LSTM step at H = 128: 170 against 84 us on an AMD EPYC Zen 3).
  typedef T Vec __attribute__((vector_size(RK_VEC_BYTES)));
  Vec acc[RB][NB];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 16
    for (int n = 0; n < NB; ++n) acc[r][n] = Vec{};
  int k = 0;
  for (; k + VL <= K; k += VL) {
    Vec av[RB], wv[NB];
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) __builtin_memcpy(&av[r], a + int64_t(r) * lda + k, sizeof(Vec));
#pragma GCC unroll 16
    for (int n = 0; n < NB; ++n) __builtin_memcpy(&wv[n], w + int64_t(n) * ldw + k, sizeof(Vec));
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r)
#pragma GCC unroll 16
      for (int n = 0; n < NB; ++n) acc[r][n] += av[r] * wv[n];
  }
  for (int r = 0; r < RB; ++r) {
    for (int n = 0; n < NB; ++n) {
      T sum = T(0);
      for (int l = 0; l < VL; ++l) sum += acc[r][n][l];
      for (int kk = k; kk < K; ++kk) sum += a[int64_t(r) * lda + kk] * w[int64_t(n) * ldw + kk];
      T& out = c[int64_t(r) * ldc + n];
      out = accumulate ? out + sum : sum;
    }
  }
}

// Rows [0, B) of c against the NB rows of w at w: blocks of RB rows, then single rows.
template <typename T, int RB, int NB>
RK_INLINE void nt_rows(int B, int K, const T* a, int lda, const T* w, int ldw, T* c, int ldc,
                       bool accumulate) {
  int b = 0;
  for (; b + RB <= B; b += RB)
    nt_block<T, RB, NB>(K, a + int64_t(b) * lda, lda, w, ldw, c + int64_t(b) * ldc, ldc,
                        accumulate);
  for (; b < B; ++b)
    nt_block<T, 1, NB>(K, a + int64_t(b) * lda, lda, w, ldw, c + int64_t(b) * ldc, ldc,
                       accumulate);
}

// c (B, N) (+)= a (B, K) w^T; meant for B up to a few dozen rows (each block of rows reads all
// of w: beyond that the (K, N) layout of step_mm, with its panels reused from L1, is better).
template <typename T>
void step_mm_nt(int B, int K, int N, const T* a, int lda, const T* w, int ldw, T* c, int ldc,
                bool accumulate) {
  constexpr int NB = RK_ACC_VECS >= 16 ? 8 : 4;  // rows of w per block of two rows of a
  int n = 0;
  if (B == 1)  // one row of a: every accumulator on it, twice the rows of w per block
    for (; n + 2 * NB <= N; n += 2 * NB)
      nt_block<T, 1, 2 * NB>(K, a, lda, w + int64_t(n) * ldw, ldw, c + n, ldc, accumulate);
  for (; n + NB <= N; n += NB)
    nt_rows<T, 2, NB>(B, K, a, lda, w + int64_t(n) * ldw, ldw, c + n, ldc, accumulate);
  for (; n < N; ++n)  // the last rows of w, one at a time
    nt_rows<T, 2, 1>(B, K, a, lda, w + int64_t(n) * ldw, ldw, c + n, ldc, accumulate);
}

void mm_nt_f(int B, int K, int N, const float* a, int lda, const float* w, int ldw, float* c,
             int ldc, bool acc) {
  step_mm_nt<float>(B, K, N, a, lda, w, ldw, c, ldc, acc);
}
void mm_nt_d(int B, int K, int N, const double* a, int lda, const double* w, int ldw, double* c,
             int ldc, bool acc) {
  step_mm_nt<double>(B, K, N, a, lda, w, ldw, c, ldc, acc);
}
