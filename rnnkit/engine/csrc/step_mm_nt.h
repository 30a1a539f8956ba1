// The register-blocked product against a matrix stored with its output dimension first:
// c (B, N) (+)= a (B, K) w^T, w (N, K) row-major (torch's weight layout), so a call of one or
// two steps needs neither a transposed copy of the weights nor a BLAS call (whose set-up cost
// exceeds the product itself at a few rows: MKL took 8 us for (1 x 128) x (128 x 512) on an AMD
// EPYC). Each output is a dot product along K: a block of RB rows of a times NB rows of w, with
// RB * NB = VL (the lanes of a vector), keeps one vector of partial sums per output, walks K
// one vector at a time, then sums the VL vectors' lanes all at once by a transposing reduction
// (log2 VL levels of shuffles and adds, ending in one vector whose lane i is output i). Summing
// each vector's lanes on its own had cost more than the products at K = 128 (an AMD EPYC Zen 5,
// (8 x 128) x (128 x 512): 16 us, against 6 us with the transposing reduction).
// Included inside each per-ISA namespace (see per_isa.h), after step_mm.h: no include guard
// and no includes.

// One output, c (+)= a . w over K (the last columns of c that no block covers).
template <typename T>
RK_INLINE void nt_dot(int K, const T* __restrict a, const T* __restrict w, T* __restrict c,
                      bool accumulate) {
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T));
  typedef T Vec __attribute__((vector_size(RK_VEC_BYTES)));
  Vec acc{};
  int k = 0;
  for (; k + VL <= K; k += VL) {
    Vec av, wv;
    __builtin_memcpy(&av, a + k, sizeof(Vec));
    __builtin_memcpy(&wv, w + k, sizeof(Vec));
    acc += av * wv;
  }
  T sum = T(0);
  for (int l = 0; l < VL; ++l) sum += acc[l];
  for (; k < K; ++k) sum += a[k] * w[k];
  *c = accumulate ? *c + sum : sum;
}

// The bit-reversal permutation of 0..VL-1: the reduction below leaves the sum of accumulator
// j in lane bit_reverse(j), so accumulator j holds output bit_reverse(j).
template <int VL>
struct BitReverse {
  int at[VL];
  constexpr BitReverse() : at() {
    for (int i = 0; i < VL; ++i) {
      int r = 0;
      for (int b = 1, x = i; b < VL; b <<= 1, x >>= 1) r = (r << 1) | (x & 1);
      at[i] = r;
    }
  }
};

// One level of the reduction: in each block of 2S lanes, the result holds a's block folded (its
// two halves added) in its first S lanes and b's in its last S.
template <typename Vec, typename IVec, int VL, int S>
RK_INLINE Vec fold_pair(Vec a, Vec b) {
  IVec lo, hi;
#pragma GCC unroll 16
  for (int i = 0; i < VL; ++i) {
    const int block = i / (2 * S) * (2 * S), j = i - block;
    lo[i] = j < S ? block + j : VL + block + j - S;
    hi[i] = j < S ? block + S + j : VL + block + j;
  }
  return __builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi);
}

// M vectors folded pairwise, level after level, into v[0].
template <typename Vec, typename IVec, int VL, int S, int M>
RK_INLINE void fold_levels(Vec* v) {
  if constexpr (M > 1) {
#pragma GCC unroll 16
    for (int i = 0; i < M / 2; ++i) v[i] = fold_pair<Vec, IVec, VL, S>(v[2 * i], v[2 * i + 1]);
    fold_levels<Vec, IVec, VL, S / 2, M / 2>(v);
  }
}

// One vector of K into the block's VL accumulators (acc[j]: row out.at[j] / NB of a times row
// out.at[j] % NB of w); `masked`: a's lanes outside `keep` count as zeros.
template <typename T, int RB, bool masked, typename Vec, typename IVec>
RK_INLINE void nt_products(const T* __restrict a, int lda, const T* __restrict w, int ldw, int k,
                           IVec keep, Vec* acc) {
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T)), NB = VL / RB;
  constexpr BitReverse<VL> out;
  Vec av[RB], wv[NB];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) {
    __builtin_memcpy(&av[r], a + int64_t(r) * lda + k, sizeof(Vec));
    if constexpr (masked) av[r] = (Vec)((IVec)av[r] & keep);
  }
#pragma GCC unroll 16
  for (int n = 0; n < NB; ++n) __builtin_memcpy(&wv[n], w + int64_t(n) * ldw + k, sizeof(Vec));
#pragma GCC unroll 16
  for (int j = 0; j < VL; ++j) acc[j] += av[out.at[j] / NB] * wv[out.at[j] % NB];
}

// c's block of RB rows x NB columns (RB * NB = VL) from RB rows of a and NB rows of w.
template <typename T, int RB>
RK_INLINE void nt_block(int K, const T* __restrict a, int lda, const T* __restrict w, int ldw,
                        T* __restrict c, int ldc, bool accumulate) {
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T)), NB = VL / RB;
  // GCC's vector types, indexed by constants once the loops unroll, so the VL partial sums stay
  // in registers (the same loops over arrays of scalars under `omp simd` ran 2x slower).
  typedef T Vec __attribute__((vector_size(RK_VEC_BYTES)));
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> IT;
  typedef IT IVec __attribute__((vector_size(RK_VEC_BYTES)));
  Vec acc[VL];
#pragma GCC unroll 16
  for (int j = 0; j < VL; ++j) acc[j] = Vec{};
  int k = 0;
  for (; k + VL <= K; k += VL) nt_products<T, RB, false>(a, lda, w, ldw, k, IVec{}, acc);
  if (k < K && K >= VL) {  // the last K % VL columns: the vector ending at K, with its first
    IVec lane;             // lanes (counted above) zeroed in a's rows
#pragma GCC unroll 16
    for (int l = 0; l < VL; ++l) lane[l] = l;
    nt_products<T, RB, true>(a, lda, w, ldw, K - VL, IVec(lane >= IT(k - (K - VL))), acc);
    k = K;
  }
  fold_levels<Vec, IVec, VL, VL / 2, VL>(acc);
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 16
    for (int n = 0; n < NB; ++n) {
      T sum = acc[0][r * NB + n];
      for (int kk = k; kk < K; ++kk)  // K < VL only
        sum += a[int64_t(r) * lda + kk] * w[int64_t(n) * ldw + kk];
      T& o = c[int64_t(r) * ldc + n];
      o = accumulate ? o + sum : sum;
    }
  }
}

// Rows [b0, b1) of c (a multiple of RB of them): column blocks outside, so a block's NB rows of
// w stay in L1 while every row block of a passes them.
template <typename T, int RB>
RK_INLINE void nt_rows(int b0, int b1, int K, int N, const T* a, int lda, const T* w, int ldw,
                       T* c, int ldc, bool accumulate) {
  constexpr int NB = RK_VEC_BYTES / int(sizeof(T)) / RB;
  int n = 0;
  for (; n + NB <= N; n += NB)
    for (int b = b0; b < b1; b += RB)
      nt_block<T, RB>(K, a + int64_t(b) * lda, lda, w + int64_t(n) * ldw, ldw,
                      c + int64_t(b) * ldc + n, ldc, accumulate);
  for (; n < N; ++n)  // the last rows of w, one output at a time
    for (int b = b0; b < b1; ++b)
      nt_dot<T>(K, a + int64_t(b) * lda, w + int64_t(n) * ldw, c + int64_t(b) * ldc + n,
                accumulate);
}

// c (B, N) (+)= a (B, K) w^T; meant for B up to a few dozen rows (each block of rows reads all
// of w: beyond that the packed panels of step_mm_packed.h, reused from L1, are better). Blocks
// of 4 rows (2 where a vector has 2 lanes), then one of 2 and one of 1 for the rest.
template <typename T>
void step_mm_nt(int B, int K, int N, const T* a, int lda, const T* w, int ldw, T* c, int ldc,
                bool accumulate) {
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T)), RB = VL >= 4 ? 4 : 2;
  int b = B / RB * RB;
  nt_rows<T, RB>(0, b, K, N, a, lda, w, ldw, c, ldc, accumulate);
  if constexpr (RB == 4) {
    if (B - b >= 2) {
      nt_rows<T, 2>(b, b + 2, K, N, a, lda, w, ldw, c, ldc, accumulate);
      b += 2;
    }
  }
  if (b < B) nt_rows<T, 1>(b, B, K, N, a, lda, w, ldw, c, ldc, accumulate);
}

void mm_nt_f(int B, int K, int N, const float* a, int lda, const float* w, int ldw, float* c,
             int ldc, bool acc) {
  step_mm_nt<float>(B, K, N, a, lda, w, ldw, c, ldc, acc);
}
void mm_nt_d(int B, int K, int N, const double* a, int lda, const double* w, int ldw, double* c,
             int ldc, bool acc) {
  step_mm_nt<double>(B, K, N, a, lda, w, ldw, c, ldc, acc);
}
