// The per-step elementwise passes and the small-batch step GEMM of the layer kernels (plain
// RNN, LSTM, GRU): each row runs its cell's row function (cells/rnn.h, cells/lstm.h,
// cells/gru.h) over n units (all H, or one thread's slice). layer_kernels.cpp compiles this file
// once per instruction set (per_isa.h); no system headers here (it is included inside namespaces).

#include "activations.h"
#include "cells/rnn.h"
#include "cells/lstm.h"
#include "cells/gru.h"

// ---- whole steps (all rows of the batch, n units) -----------------------------------------

template <typename T, bool KEEP>
void forward_rows(const FwdStep<T>& s) {
  const int n = s.n, H = s.H, G = s.G, gates = G / H;
  for (int b = 0; b < s.B; ++b) {
    T* hb = s.h + int64_t(b) * H;
    const T* hin = s.hin + int64_t(b) * H;
    T* ob = s.out + int64_t(b) * s.ldo;
    if (s.len && s.t >= s.len[b]) {  // past this sequence's end: state passes through
      std::memset(ob, 0, sizeof(T) * n);
      if (hin != hb) std::memcpy(hb, hin, sizeof(T) * n);
      continue;
    }
    T* ab = s.a + int64_t(b) * G;
    const bool add_gh = s.mode != GRU && s.gh;  // a += h W_hh^T, when the GEMM wrote it apart
    if (add_gh || s.xb) {                          // and/or a += the input-side bias
      for (int g = 0; g < gates; ++g) {
        T* __restrict ar = ab + int64_t(g) * H;
        const T* __restrict gr = add_gh ? s.gh + int64_t(b) * s.ldgh + int64_t(g) * s.ghs
                                        : nullptr;
        const T* __restrict xr = s.xb ? s.xb + int64_t(g) * H : nullptr;
        if (gr && xr) {
#pragma omp simd
          for (int j = 0; j < n; ++j) ar[j] += gr[j] + xr[j];
        } else if (gr) {
#pragma omp simd
          for (int j = 0; j < n; ++j) ar[j] += gr[j];
        } else {
#pragma omp simd
          for (int j = 0; j < n; ++j) ar[j] += xr[j];
        }
      }
    }
    if (s.mode == LSTM) {
      T* cb = s.c + int64_t(b) * H;
      if (KEEP) std::memcpy(s.cprev + int64_t(b) * H, cb, sizeof(T) * n);
      lstm_fwd<T, KEEP, true>(ab, ab, cb, cb, hb, ob, KEEP ? s.tanhc + int64_t(b) * H : nullptr,
                              n, H);
    } else if (s.mode == GRU) {
      gru_fwd<T, KEEP, true>(ab, s.gh + int64_t(b) * s.ldgh, s.ghs, s.b_hh, hin, hb, ob,
                             KEEP ? s.act + int64_t(b) * 4 * H : nullptr, n, H);
    } else if (s.mode == RNN_TANH) {
      rnn_fwd<T, false, true>(ab, ab, hb, ob, n);
    } else {
      rnn_fwd<T, true, true>(ab, ab, hb, ob, n);
    }
  }
}

template <typename T>
void backward_rows(const BwdStep<T>& s) {
  const int n = s.n, H = s.H, G = s.G, gates = G / H;
  for (int b = 0; b < s.B; ++b) {
    if (s.len && s.t >= s.len[b]) {  // state passed through: so do the gradients
      for (int g = 0; g < gates; ++g) {
        std::memset(s.dgx + int64_t(b) * G + int64_t(g) * H, 0, sizeof(T) * n);
        if (s.mode == GRU) std::memset(s.dgh + int64_t(b) * G + int64_t(g) * H, 0, sizeof(T) * n);
      }
      continue;
    }
    const T* ab = s.act + int64_t(b) * s.aw;
    const T* db = s.dout + int64_t(b) * s.ldo;
    T* dhb = s.dh + int64_t(b) * H;
    if (s.mode == LSTM) {
      lstm_bwd<T, true>(ab, s.cprev + int64_t(b) * H, s.tanhc + int64_t(b) * H, db, dhb,
                        s.dc + int64_t(b) * H, nullptr, s.dgx + int64_t(b) * G, n, H);
    } else if (s.mode == GRU) {
      gru_bwd<T, true>(ab, s.hprev + int64_t(b) * H, db, dhb, s.dgx + int64_t(b) * G,
                       s.dgh + int64_t(b) * G, nullptr, n, H);
    } else if (s.mode == RNN_RELU) {
      rnn_bwd<T, true, true>(ab, db, dhb, s.dgx + int64_t(b) * G, n);
    } else {
      rnn_bwd<T, false, true>(ab, db, dhb, s.dgx + int64_t(b) * G, n);
    }
  }
}

#include "step_mm.h"
#include "step_mm_packed.h"
#include "step_mm_nt.h"

// dst (C, R) = src (R, C)^T with dst's rows ldd apart, in 32 x 32 tiles so both sides stay
// in cache.
template <typename T>
void transpose(const T* __restrict src, int R, int C, T* __restrict dst, int ldd) {
  constexpr int TS = 32;
  for (int r0 = 0; r0 < R; r0 += TS) {
    const int r1 = r0 + TS < R ? r0 + TS : R;
    for (int c0 = 0; c0 < C; c0 += TS) {
      const int c1 = c0 + TS < C ? c0 + TS : C;
      for (int c = c0; c < c1; ++c) {
#pragma omp simd
        for (int r = r0; r < r1; ++r) dst[int64_t(c) * ldd + r] = src[int64_t(r) * C + c];
      }
    }
  }
}

// Non-template entry points: the dispatch table in layer_kernels.cpp points at these.
void fwd_keep_f(const FwdStep<float>& s) { forward_rows<float, true>(s); }
void fwd_nokeep_f(const FwdStep<float>& s) { forward_rows<float, false>(s); }
void bwd_f(const BwdStep<float>& s) { backward_rows<float>(s); }
void transpose_f(const float* src, int R, int C, float* dst, int ldd) {
  transpose<float>(src, R, C, dst, ldd);
}
void transpose_d(const double* src, int R, int C, double* dst, int ldd) {
  transpose<double>(src, R, C, dst, ldd);
}
void fwd_keep_d(const FwdStep<double>& s) { forward_rows<double, true>(s); }
void fwd_nokeep_d(const FwdStep<double>& s) { forward_rows<double, false>(s); }
void bwd_d(const BwdStep<double>& s) { backward_rows<double>(s); }
