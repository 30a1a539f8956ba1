// The register-blocked per-step product on row-major weights: c (B, N) (+)= a (B, K) m (K, N),
// all row-major with leading dimensions lda, ldm, ldc (so a caller can compute a column range of
// a wider product). For the calls that do not pack their weights (one or two steps, the skip
// RNN, a large batch's slice); the long step loops use step_mm_packed.h.
// Included inside each per-ISA namespace (under its own `#pragma GCC target`, with RK_VEC_BYTES
// and RK_ACC_VECS defined for it), so: no include guard and no includes.

// A block of RB rows of c times JB columns stays in registers (RK_ACC_VECS vectors of
// independent FMA chains) while the walk goes down the K rows of m.
template <typename T, int RB, int JB>
RK_INLINE void step_mm_block(int K, const T* __restrict a, int lda, const T* __restrict m, int ldm,
                             T* __restrict c, int ldc, bool accumulate, const T* __restrict bias) {
  T acc[RB][JB];
  for (int r = 0; r < RB; ++r) {
#pragma omp simd
    for (int j = 0; j < JB; ++j)
      acc[r][j] = accumulate ? c[int64_t(r) * ldc + j] : (bias ? bias[j] : T(0));
  }
  for (int k = 0; k < K; ++k) {
    const T* __restrict mk = m + int64_t(k) * ldm;
    for (int r = 0; r < RB; ++r) {
      const T ak = a[int64_t(r) * lda + k];
#pragma omp simd
      for (int j = 0; j < JB; ++j) acc[r][j] += ak * mk[j];
    }
  }
  for (int r = 0; r < RB; ++r) {
#pragma omp simd
    for (int j = 0; j < JB; ++j) c[int64_t(r) * ldc + j] = acc[r][j];
  }
}

// Columns [0, JB) of c for all B rows: blocks of RBMAX (8 or 4) rows (each reads the panel of
// m, K x JB, from L1 after the first), then 4, 2, 1.
template <typename T, int JB, int RBMAX>
RK_INLINE void step_mm_panel(int B, int K, const T* a, int lda, const T* m, int ldm, T* c,
                             int ldc, bool accumulate, const T* bias) {
  int b = 0;
  if constexpr (RBMAX == 8) {
    for (; b + 8 <= B; b += 8)
      step_mm_block<T, 8, JB>(K, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                              accumulate, bias);
  }
  for (; b + 4 <= B; b += 4)
    step_mm_block<T, 4, JB>(K, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                            accumulate, bias);
  for (; b + 2 <= B; b += 2)
    step_mm_block<T, 2, JB>(K, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                            accumulate, bias);
  for (; b < B; ++b)
    step_mm_block<T, 1, JB>(K, a + int64_t(b) * lda, lda, m, ldm, c + int64_t(b) * ldc, ldc,
                            accumulate, bias);
}

// Columns [j0, N) in panels of JB columns, then at most one panel each of JB/2, JB/4, ..., 1:
// every column in registers (a tail of N % 16 columns left to a loop through memory ran the
// (10 x 800) x (800 x 200) product at 73 GFLOP/s with AVX-512 instead of 160). With several
// blocks of rows, the K rows of a panel go in equal slices of at most 32 KB, so that each slice
// stays in L1 while every block of rows reads it (the partial sums pass through c, in the
// same order of k: the results do not change).
template <typename T, int JB, int RBMAX = 4>
RK_INLINE void step_mm_panels(int B, int K, int N, int j0, const T* a, int lda, const T* m,
                             int ldm, T* c, int ldc, bool accumulate, const T* bias) {
  const int64_t panel_bytes = int64_t(K) * JB * int(sizeof(T));
  const int slices = B > 4 ? int((panel_bytes + 32767) / 32768) : 1;
  const int k_slice = (K + slices - 1) / slices;
  for (; j0 + JB <= N; j0 += JB) {
    for (int k0 = 0; k0 < K; k0 += k_slice)
      step_mm_panel<T, JB, RBMAX>(B, std::min(k_slice, K - k0), a + k0, lda,
                           m + int64_t(k0) * ldm + j0, ldm, c + j0, ldc, accumulate || k0 > 0,
                           bias ? bias + j0 : nullptr);
  }
  if constexpr (JB > 1)
    step_mm_panels<T, JB / 2, RBMAX>(B, K, N, j0, a, lda, m, ldm, c, ldc, accumulate, bias);
}

template <typename T>
void step_mm(int B, int K, int N, const T* a, int lda, const T* m, int ldm, T* c, int ldc,
             bool accumulate, const T* bias = nullptr) {
  // Every accumulator on the rows of a block: panels as wide as RK_ACC_VECS vectors for one
  // row, half that for two, a quarter for blocks of four, an eighth for blocks of eight when
  // the product is too narrow for a quarter (each row then reads fewer columns of m per load).
  // Without `accumulate`, c starts from the row vector `bias` (N) when given, else from zero.
  constexpr int ACC = RK_ACC_VECS * RK_VEC_BYTES / int(sizeof(T));
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T));
  if (B == 1)
    step_mm_panels<T, ACC>(B, K, N, 0, a, lda, m, ldm, c, ldc, accumulate, bias);
  else if (B < 4)
    step_mm_panels<T, ACC / 2>(B, K, N, 0, a, lda, m, ldm, c, ldc, accumulate, bias);
  else if (B < 8 || N >= ACC / 4 || ACC / 8 < VL)
    step_mm_panels<T, ACC / 4>(B, K, N, 0, a, lda, m, ldm, c, ldc, accumulate, bias);
  else
    step_mm_panels<T, (ACC / 8 < VL ? VL : ACC / 8), 8>(B, K, N, 0, a, lda, m, ldm, c, ldc,
                                                        accumulate, bias);
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
