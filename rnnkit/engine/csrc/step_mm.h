// The register-blocked per-step product of both extensions: c (B, N) (+)= a (B, K) m (K, N), all
// row-major with leading dimensions lda, ldm, ldc (so a caller can compute a column range of a
// wider product). Replaces a BLAS call that would repack m at every step of a small batch.
// Included inside each per-ISA namespace (under its own `#pragma GCC target`), so: no include
// guard and no includes.

// Blocks of RB rows of c times JB = 128 / RB columns stay in registers while the walk goes down
// the K rows of m: 8 float vectors (16 double) of independent FMA chains.
template <typename T, int RB>
RK_INLINE void step_mm_rows(int K, int N, const T* __restrict a, int lda, const T* __restrict m,
                            int ldm, T* __restrict c, int ldc, bool accumulate) {
  constexpr int JB = 128 / RB;
  int j0 = 0;
  for (; j0 + JB <= N; j0 += JB) {
    T acc[RB][JB];
    for (int r = 0; r < RB; ++r) {
#pragma omp simd
      for (int j = 0; j < JB; ++j) acc[r][j] = accumulate ? c[int64_t(r) * ldc + j0 + j] : T(0);
    }
    for (int k = 0; k < K; ++k) {
      const T* __restrict mk = m + int64_t(k) * ldm + j0;
      for (int r = 0; r < RB; ++r) {
        const T ak = a[int64_t(r) * lda + k];
#pragma omp simd
        for (int j = 0; j < JB; ++j) acc[r][j] += ak * mk[j];
      }
    }
    for (int r = 0; r < RB; ++r) {
#pragma omp simd
      for (int j = 0; j < JB; ++j) c[int64_t(r) * ldc + j0 + j] = acc[r][j];
    }
  }
  for (int r = 0; r < RB && j0 < N; ++r) {  // the last N % JB columns, one row of c at a time
    T* __restrict cr = c + int64_t(r) * ldc;
    if (!accumulate)
      for (int j = j0; j < N; ++j) cr[j] = T(0);
    for (int k = 0; k < K; ++k) {
      const T ak = a[int64_t(r) * lda + k];
      const T* __restrict mk = m + int64_t(k) * ldm;
#pragma omp simd
      for (int j = j0; j < N; ++j) cr[j] += ak * mk[j];
    }
  }
}

template <typename T>
void step_mm(int B, int K, int N, const T* a, int lda, const T* m, int ldm, T* c, int ldc,
             bool accumulate) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    step_mm_rows<T, 4>(K, N, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                       accumulate);
  for (; b + 2 <= B; b += 2)
    step_mm_rows<T, 2>(K, N, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                       accumulate);
  for (; b < B; ++b)
    step_mm_rows<T, 1>(K, N, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                       accumulate);
}

// Non-template entry points for the dispatch tables.
void mm_f(int B, int K, int N, const float* a, int lda, const float* m, int ldm, float* c,
          int ldc, bool acc) {
  step_mm<float>(B, K, N, a, lda, m, ldm, c, ldc, acc);
}
void mm_d(int B, int K, int N, const double* a, int lda, const double* m, int ldm, double* c,
          int ldc, bool acc) {
  step_mm<double>(B, K, N, a, lda, m, ldm, c, ldc, acc);
}
