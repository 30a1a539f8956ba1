// An attention decoder's row loops (decoder_kernels.cpp): masked softmax attention of a range
// of rows and the engine's tanh over a vector. decoder_kernels.cpp compiles this file once per
// instruction set (per_isa.h); no system headers here (it is included inside namespaces).

#include "activations.h"

template <typename T>
void tanh_inplace(T* __restrict v, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) v[j] = act_tanh(v[j]);
}

// Masked softmax attention of one row: weights (S), context (K). Scores q . pk_s (Luong; q the
// new hidden state), or with `v` v . tanh(q + pk_s) (Bahdanau; q = W_q h_prev).
template <typename T>
void attend_row(int n, int N, int S, int H, int K, const T* __restrict q, const T* pk,
                const T* keys, const bool* mask, const T* __restrict v, T* __restrict weights,
                T* __restrict ctx) {
  T top = -std::numeric_limits<T>::infinity();
  for (int s = 0; s < S; ++s) {
    T score = -std::numeric_limits<T>::infinity();
    if (mask[int64_t(s) * N + n]) {
      const T* __restrict k = pk + (int64_t(s) * N + n) * H;
      T acc = 0;
      if (v) {
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < H; ++j) acc += v[j] * act_tanh(q[j] + k[j]);
      } else {
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < H; ++j) acc += q[j] * k[j];
      }
      score = acc;
    }
    weights[s] = score;
    top = std::max(top, score);
  }
  // As torch.softmax: a row with every position masked gives NaN weights (-inf - -inf).
  T total = 0;
  for (int s = 0; s < S; ++s) {
    weights[s] = std::exp(weights[s] - top);
    total += weights[s];
  }
  // Weights below the smallest normal number are 0 here: a subnormal weight (the scores of a
  // confident row lie tens apart) would make every product of its context pass subnormal, ~100x
  // slower on x86, for a change below 1e-38.
  for (int s = 0; s < S; ++s) {
    const T a = weights[s] / total;
    weights[s] = a < std::numeric_limits<T>::min() ? T(0) : a;
  }
  std::fill(ctx, ctx + K, T(0));
  for (int s = 0; s < S; ++s) {
    const T a = weights[s];
    if (a == T(0)) continue;
    const T* __restrict k = keys + (int64_t(s) * N + n) * K;
#pragma omp simd
    for (int j = 0; j < K; ++j) ctx[j] += a * k[j];
  }
}

// Entry points for the dispatch table: rows [n0, n1) of attend_row.
template <typename T>
void attend_rows(int n0, int n1, int N, int S, int H, int K, const T* q, const T* pk,
                 const T* keys, const bool* mask, const T* v, T* weights, T* ctx, int64_t ldc) {
  for (int n = n0; n < n1; ++n)
    attend_row<T>(n, N, S, H, K, q + int64_t(n) * H, pk, keys, mask, v, weights + int64_t(n) * S,
                  ctx + n * ldc);
}
void attend_f(int n0, int n1, int N, int S, int H, int K, const float* q, const float* pk,
              const float* keys, const bool* mask, const float* v, float* weights, float* ctx,
              int64_t ldc) {
  attend_rows<float>(n0, n1, N, S, H, K, q, pk, keys, mask, v, weights, ctx, ldc);
}
void attend_d(int n0, int n1, int N, int S, int H, int K, const double* q, const double* pk,
              const double* keys, const bool* mask, const double* v, double* weights,
              double* ctx, int64_t ldc) {
  attend_rows<double>(n0, n1, N, S, H, K, q, pk, keys, mask, v, weights, ctx, ldc);
}
void tanh_f(float* v, int64_t n) { tanh_inplace<float>(v, n); }
void tanh_d(double* v, int64_t n) { tanh_inplace<double>(v, n); }
