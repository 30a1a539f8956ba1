// The per-step product on a matrix packed once per layer call: c (B, N) (+)= a (B, K) M (K, N),
// M stored as panels of PW columns (PW = a quarter of the accumulator vectors: 64 floats with
// AVX-512), each panel K x PW contiguous, panel p at p * K * PW; the last panel only as wide as
// the rest of N rounded up to a vector (its padding zero). Row-major M of a layer's width makes
// the kernel walk down rows 2-8 KB apart: at N = 1024 floats every row of a panel falls into
// the same L1 sets, and every row sits on its own page. Packed, a panel is one stream. On an
// AMD EPYC Zen 5 (one core, AVX-512) the (64 x 256) x (256 x 1024) product ran at 241 GFLOP/s
// against 173 row-major (133-140 with rows off 64-byte alignment), (20 x 200) x (200 x 800) at
// 241 against 232.
// A range of columns [n0, N) with n0 a multiple of PW is the packed matrix from n0 * K on.
// Included inside each per-ISA namespace after step_mm.h: no include guard and no includes.

template <typename T>
constexpr int pack_width() {
  return RK_ACC_VECS * RK_VEC_BYTES / int(sizeof(T)) / 4;
}

// M (K, N) into panels (see above); m_nk: M is given transposed, as W (N, K) with rows ldm
// apart (torch's weight layout), else as M (K, N) with rows ldm apart.
template <typename T>
void pack_matrix(int K, int N, const T* __restrict m, int ldm, bool m_nk, T* __restrict mp) {
  constexpr int PW = pack_width<T>(), VL = RK_VEC_BYTES / int(sizeof(T));
  for (int j0 = 0; j0 < N; j0 += PW) {
    const int nv = std::min(PW, N - j0);
    const int w = j0 + PW <= N ? PW : (nv + VL - 1) / VL * VL;
    T* __restrict panel = mp + int64_t(j0) * K;
    if (!m_nk) {
      for (int k = 0; k < K; ++k) {
        std::memcpy(panel + int64_t(k) * w, m + int64_t(k) * ldm + j0, sizeof(T) * nv);
        for (int j = nv; j < w; ++j) panel[int64_t(k) * w + j] = T(0);
      }
      continue;
    }
    const T* __restrict rows = m + int64_t(j0) * ldm;
    for (int k0 = 0; k0 < K; k0 += 32) {  // 32 columns of the panel's rows at a time (in L1)
      const int k1 = std::min(K, k0 + 32);
      for (int k = k0; k < k1; ++k) {
        T* __restrict dst = panel + int64_t(k) * w;
#pragma omp simd
        for (int j = 0; j < nv; ++j) dst[j] = rows[int64_t(j) * ldm + k];
        for (int j = nv; j < w; ++j) dst[j] = T(0);
      }
    }
  }
}

// RB rows of c times Q panels of W columns (rows W apart, panels ps apart) in registers;
// FULL false: only the first nv < Q * W columns are read and written. Not inlined: inlined
// into one caller with all the other blocks, the one-row block of one panel cost ~0.17 us
// more per call (its (1 x 128) x (128 x 64) product ran at 57 instead of 136 GFLOP/s).
template <typename T, int RB, int Q, int W, bool FULL>
__attribute__((noinline)) void packed_block(int K, const T* __restrict a, int lda,
                                            const T* __restrict mp, int64_t ps, T* __restrict c,
                                            int ldc, bool accumulate, const T* __restrict bias,
                                            int nv) {
  constexpr int JB = Q * W;
  T acc[RB][JB];
  for (int r = 0; r < RB; ++r) {
    if constexpr (FULL) {
#pragma omp simd
      for (int j = 0; j < JB; ++j)
        acc[r][j] = accumulate ? c[int64_t(r) * ldc + j] : (bias ? bias[j] : T(0));
    } else {
#pragma omp simd
      for (int j = 0; j < JB; ++j)
        acc[r][j] = j >= nv ? T(0) : accumulate ? c[int64_t(r) * ldc + j] : bias ? bias[j] : T(0);
    }
  }
  for (int k = 0; k < K; ++k) {
    for (int r = 0; r < RB; ++r) {
      const T ak = a[int64_t(r) * lda + k];
      for (int q = 0; q < Q; ++q) {
        const T* __restrict mk = mp + q * ps + int64_t(k) * W;
#pragma omp simd
        for (int j = 0; j < W; ++j) acc[r][q * W + j] += ak * mk[j];
      }
    }
  }
  for (int r = 0; r < RB; ++r) {
    if constexpr (FULL) {
#pragma omp simd
      for (int j = 0; j < JB; ++j) c[int64_t(r) * ldc + j] = acc[r][j];
    } else {
      for (int j = 0; j < nv; ++j) c[int64_t(r) * ldc + j] = acc[r][j];
    }
  }
}

// All B rows against Q panels of width W from column 0 of c: blocks of 4 rows, then 2, 1.
template <typename T, int Q, int W, bool FULL = true>
RK_INLINE void packed_rows(int B, int K, const T* a, int lda, const T* mp, int64_t ps, T* c,
                           int ldc, bool accumulate, const T* bias, int nv) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    packed_block<T, 4, Q, W, FULL>(K, a + int64_t(b) * lda, lda, mp, ps, c + int64_t(b) * ldc,
                                   ldc, accumulate, bias, nv);
  for (; b + 2 <= B; b += 2)
    packed_block<T, 2, Q, W, FULL>(K, a + int64_t(b) * lda, lda, mp, ps, c + int64_t(b) * ldc,
                                   ldc, accumulate, bias, nv);
  for (; b < B; ++b)
    packed_block<T, 1, Q, W, FULL>(K, a + int64_t(b) * lda, lda, mp, ps, c + int64_t(b) * ldc,
                                   ldc, accumulate, bias, nv);
}

// The last, partial panel: V vectors wide (V from 1 to PW / VL).
template <typename T, int V>
void packed_tail(int B, int K, const T* a, int lda, const T* mp, T* c, int ldc,
                 bool accumulate, const T* bias, int v, int nv) {
  constexpr int VL = RK_VEC_BYTES / int(sizeof(T));
  if constexpr (V > 1) {
    if (v < V) {
      packed_tail<T, V - 1>(B, K, a, lda, mp, c, ldc, accumulate, bias, v, nv);
      return;
    }
  }
  if (nv == V * VL)
    packed_rows<T, 1, V * VL>(B, K, a, lda, mp, 0, c, ldc, accumulate, bias, nv);
  else
    packed_rows<T, 1, V * VL, false>(B, K, a, lda, mp, 0, c, ldc, accumulate, bias, nv);
}

template <typename T>
void step_mm_packed(int B, int K, int N, const T* a, int lda, const T* mp, T* c, int ldc,
                    bool accumulate, const T* bias = nullptr) {
  constexpr int PW = pack_width<T>(), VL = RK_VEC_BYTES / int(sizeof(T));
  const int64_t ps = int64_t(K) * PW;
  const int full = N / PW;
  // One or two rows: several panels at once, so that as many accumulator chains run.
  const int Q = B == 1 ? 4 : B < 4 ? 2 : 1;
  int p = 0;
  auto at = [&](int panel) { return panel * PW; };
  if (Q == 4) {
    for (; p + 4 <= full; p += 4)
      packed_rows<T, 4, PW>(B, K, a, lda, mp + p * ps, ps, c + at(p), ldc, accumulate,
                            bias ? bias + at(p) : nullptr, 4 * PW);
  }
  if (Q >= 2) {
    for (; p + 2 <= full; p += 2)
      packed_rows<T, 2, PW>(B, K, a, lda, mp + p * ps, ps, c + at(p), ldc, accumulate,
                            bias ? bias + at(p) : nullptr, 2 * PW);
  }
  for (; p < full; ++p)
    packed_rows<T, 1, PW>(B, K, a, lda, mp + p * ps, ps, c + at(p), ldc, accumulate,
                          bias ? bias + at(p) : nullptr, PW);
  const int nv = N - full * PW;
  if (nv > 0) {
    const int v = (nv + VL - 1) / VL;
    packed_tail<T, PW / VL>(
        B, K, a, lda, mp + full * ps, c + at(full), ldc, accumulate,
        bias ? bias + at(full) : nullptr, v, nv);
  }
}

// Non-template entry points for the dispatch tables.
void pack_f(int K, int N, const float* m, int ldm, bool m_nk, float* mp) {
  pack_matrix<float>(K, N, m, ldm, m_nk, mp);
}
void pack_d(int K, int N, const double* m, int ldm, bool m_nk, double* mp) {
  pack_matrix<double>(K, N, m, ldm, m_nk, mp);
}
void mm_packed_f(int B, int K, int N, const float* a, int lda, const float* mp, float* c,
                 int ldc, bool acc, const float* bias) {
  step_mm_packed<float>(B, K, N, a, lda, mp, c, ldc, acc, bias);
}
void mm_packed_d(int B, int K, int N, const double* a, int lda, const double* mp, double* c,
                 int ldc, bool acc, const double* bias) {
  step_mm_packed<double>(B, K, N, a, lda, mp, c, ldc, acc, bias);
}
