// The fused CPU engine: forward and hand-written BPTT backward of one RNN/LSTM/GRU layer (both
// directions), with per-sequence lengths masked inside the kernel.
//
// Shape alphabet (as in the Python code): T time, B batch, I input size, H hidden size,
// G gate width (H for RNN, 4H for LSTM, 3H for GRU), D directions.
//
// Forward, per direction:
//   xp = x W_ih^T + b_ih (+ b_hh for RNN/LSTM)       one GEMM over all T*B rows     (T, B, G)
//   for each step t (reversed for d = 1):
//     a = xp[t] + h W_hh^T                            one small GEMM on W_hh^T       (B, G)
//     gates, c, h = one fused, vectorised elementwise pass over (B, H)
// Backward, per direction, steps in the opposite order:
//   dG[t] = one fused elementwise pass (the BPTT equations), dh_prev += dG[t] W_hh
//   then dW_ih = dG^T x, dW_hh = dG^T h_prev, db = sum dG, dx = dG W_ih: large GEMMs over T*B.
// A row b with t >= len[b] passes its state through unchanged and outputs zero, so the forward
// direction ends on each sequence's last valid step and the reverse direction starts there.

#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" {
// Fortran BLAS shipped inside libtorch_cpu (MKL on x86-64 wheels); LP64 integer interface.
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
}

namespace {

enum Mode : int64_t { RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3 };

// Row-major C(M,N) = alpha * op(A)(M,K) op(B)(K,N) + beta * C, through column-major BLAS
// (C^T = op(B)^T op(A)^T).
inline void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  const char tA = tb ? 'T' : 'N', tB = ta ? 'T' : 'N';
  sgemm_(&tA, &tB, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  const char tA = tb ? 'T' : 'N', tB = ta ? 'T' : 'N';
  dgemm_(&tA, &tB, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

// ---- activations -------------------------------------------------------------------------
// float: branch-free exp (Cody-Waite reduction, degree-7 Taylor, exponent by bit shift), so the
// gate loops vectorise; accurate to a few float32 ulp. double: libm, for 1e-10 agreement.

inline float fast_exp(float x) {
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

inline float act_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

inline float act_tanh(float x) {
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
  float big = 1.0f - 2.0f / (fast_exp(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < 0.6f ? small : big;
}

inline double act_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double act_tanh(double x) { return std::tanh(x); }

template <typename T>
inline T act_relu(T x) { return x > T(0) ? x : T(0); }

// ---- one direction of one layer ------------------------------------------------------------

template <typename T>
struct Dir {
  const T* w_ih;   // (G, I)
  const T* w_hh;   // (G, H)
  const T* b_ih;   // (G) or null
  const T* b_hh;   // (G) or null
};

inline int gate_count(int64_t mode) { return mode == LSTM ? 4 : (mode == GRU ? 3 : 1); }

// One LSTM row: gates a = (i, f, g, o) pre-activations in, activations out; c, h updated.
template <typename T, bool KEEP>
inline void lstm_row(T* __restrict a, T* __restrict c, T* __restrict h, T* __restrict out,
                     T* __restrict tanh_c, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T i = act_sigmoid(a[j]);
    const T f = act_sigmoid(a[H + j]);
    const T g = act_tanh(a[2 * H + j]);
    const T o = act_sigmoid(a[3 * H + j]);
    const T cn = f * c[j] + i * g;   // c = f * c_prev + i * g
    const T tc = act_tanh(cn);
    const T hn = o * tc;             // h = o * tanh(c)
    if (KEEP) {
      a[j] = i;
      a[H + j] = f;
      a[2 * H + j] = g;
      a[3 * H + j] = o;
      tanh_c[j] = tc;
    }
    c[j] = cn;
    h[j] = hn;
    out[j] = hn;
  }
}

// Saved per direction for the backward (keep == true), all (T, B, *):
//   RNN : act (h_t),          hprev
//   LSTM: act (i, f, g, o),   hprev, cprev, tanh_c
//   GRU : act (r, z, n, hn),  hprev          (hn = W_hn h_prev + b_hn)
template <typename T>
void forward_dir(int64_t mode, int Tn, int Bn, int In, int Hn, const T* x, Dir<T> w,
                 const int64_t* len, bool reverse, T* h, T* c, T* out, int ldo,
                 std::vector<at::Tensor>& saved, bool keep, const at::TensorOptions& opt) {
  const int G = gate_count(mode) * Hn;
  const int64_t TB = int64_t(Tn) * Bn;
  // xp = x W_ih^T + b_ih (+ b_hh): bias rows first, then one GEMM with beta = 1.  (T, B, G)
  at::Tensor xp_t = at::empty({Tn, Bn, G}, opt);
  T* xp = xp_t.data_ptr<T>();
  const bool fold_hh = mode != GRU;
  for (int64_t r = 0; r < TB; ++r) {
    T* row = xp + r * G;
    if (w.b_ih) {
      const T* bi = w.b_ih;
      const T* bh = w.b_hh;
      if (fold_hh) {
#pragma omp simd
        for (int j = 0; j < G; ++j) row[j] = bi[j] + bh[j];
      } else {
#pragma omp simd
        for (int j = 0; j < G; ++j) row[j] = bi[j];
      }
    } else {
      std::memset(row, 0, sizeof(T) * G);
    }
  }
  gemm(false, true, int(TB), G, In, T(1), x, In, w.w_ih, In, T(1), xp, G);

  // Pre-transposed recurrent weights W_hh^T (H, G): the per-step GEMM reads them row by row.
  at::Tensor wt_t = at::from_blob(const_cast<T*>(w.w_hh), {G, Hn}, opt).t().contiguous();
  const T* wt = wt_t.data_ptr<T>();

  at::Tensor act_t, hprev_t, cprev_t, tanhc_t, gh_t;
  T *act = nullptr, *hprev = nullptr, *cprev = nullptr, *tanhc = nullptr, *gh = nullptr;
  if (keep) {
    hprev_t = at::empty({Tn, Bn, Hn}, opt);
    hprev = hprev_t.data_ptr<T>();
    if (mode == GRU) {
      act_t = at::empty({Tn, Bn, 4 * Hn}, opt);
      act = act_t.data_ptr<T>();
    }
    if (mode == LSTM) {
      cprev_t = at::empty({Tn, Bn, Hn}, opt);
      tanhc_t = at::empty({Tn, Bn, Hn}, opt);
      cprev = cprev_t.data_ptr<T>();
      tanhc = tanhc_t.data_ptr<T>();
    }
  }
  if (mode == GRU) {
    gh_t = at::empty({Bn, G}, opt);
    gh = gh_t.data_ptr<T>();
  }
  const T* bhh = w.b_hh;

  for (int s = 0; s < Tn; ++s) {
    const int t = reverse ? Tn - 1 - s : s;
    T* a = xp + int64_t(t) * Bn * G;  // (B, G): pre-activations, overwritten by activations
    if (keep) std::memcpy(hprev + int64_t(t) * Bn * Hn, h, sizeof(T) * Bn * Hn);
    if (mode == GRU) {
      gemm(false, false, Bn, G, Hn, T(1), h, Hn, wt, G, T(0), gh, G);  // gh = h W_hh^T
    } else {
      gemm(false, false, Bn, G, Hn, T(1), h, Hn, wt, G, T(1), a, G);   // a += h W_hh^T
    }
    for (int b = 0; b < Bn; ++b) {
      T* __restrict hb = h + int64_t(b) * Hn;
      T* __restrict ob = out + (int64_t(t) * Bn + b) * ldo;
      if (len && t >= len[b]) {  // past this sequence's end: state passes through
        std::memset(ob, 0, sizeof(T) * Hn);
        continue;
      }
      T* __restrict ab = a + int64_t(b) * G;
      if (mode == LSTM) {
        T* __restrict cb = c + int64_t(b) * Hn;
        if (keep) {
          T* cp = cprev + (int64_t(t) * Bn + b) * Hn;
          std::memcpy(cp, cb, sizeof(T) * Hn);
          lstm_row<T, true>(ab, cb, hb, ob, tanhc + (int64_t(t) * Bn + b) * Hn, Hn);
        } else {
          lstm_row<T, false>(ab, cb, hb, ob, nullptr, Hn);
        }
      } else if (mode == GRU) {
        const T* __restrict gb = gh + int64_t(b) * G;
        T* __restrict sv = keep ? act + (int64_t(t) * Bn + b) * 4 * Hn : nullptr;
        if (keep) {
#pragma omp simd
          for (int j = 0; j < Hn; ++j) {
            const T bz = bhh ? bhh[Hn + j] : T(0);
            const T br = bhh ? bhh[j] : T(0);
            const T bn = bhh ? bhh[2 * Hn + j] : T(0);
            const T r = act_sigmoid(ab[j] + gb[j] + br);             // r = s(W_ir x + W_hr h)
            const T z = act_sigmoid(ab[Hn + j] + gb[Hn + j] + bz);   // z = s(W_iz x + W_hz h)
            const T hn = gb[2 * Hn + j] + bn;                        // hn = W_hn h + b_hn
            const T n = act_tanh(ab[2 * Hn + j] + r * hn);           // n = tanh(W_in x + r hn)
            const T hnew = (T(1) - z) * n + z * hb[j];               // h = (1 - z) n + z h
            sv[j] = r;
            sv[Hn + j] = z;
            sv[2 * Hn + j] = n;
            sv[3 * Hn + j] = hn;
            hb[j] = hnew;
            ob[j] = hnew;
          }
        } else {
#pragma omp simd
          for (int j = 0; j < Hn; ++j) {
            const T bz = bhh ? bhh[Hn + j] : T(0);
            const T br = bhh ? bhh[j] : T(0);
            const T bn = bhh ? bhh[2 * Hn + j] : T(0);
            const T r = act_sigmoid(ab[j] + gb[j] + br);
            const T z = act_sigmoid(ab[Hn + j] + gb[Hn + j] + bz);
            const T n = act_tanh(ab[2 * Hn + j] + r * (gb[2 * Hn + j] + bn));
            const T hnew = (T(1) - z) * n + z * hb[j];
            hb[j] = hnew;
            ob[j] = hnew;
          }
        }
      } else if (mode == RNN_TANH) {
#pragma omp simd
        for (int j = 0; j < Hn; ++j) {
          const T hn = act_tanh(ab[j]);   // h = tanh(a)
          ab[j] = hn;
          hb[j] = hn;
          ob[j] = hn;
        }
      } else {
#pragma omp simd
        for (int j = 0; j < Hn; ++j) {
          const T hn = act_relu(ab[j]);   // h = relu(a)
          ab[j] = hn;
          hb[j] = hn;
          ob[j] = hn;
        }
      }
    }
  }
  if (keep) {
    if (mode == GRU) {
      saved.push_back(act_t);
    } else {
      saved.push_back(xp_t);  // the activations, written over the pre-activations
    }
    saved.push_back(hprev_t);
    if (mode == LSTM) {
      saved.push_back(cprev_t);
      saved.push_back(tanhc_t);
    }
  }
}

}  // namespace

#include "fused_rnn_backward.h"
