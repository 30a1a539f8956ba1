// One whole step (all rows of the batch) of the direction kernels, forward and backward: each
// row runs its cell's row function (cells/*.h), then zoneout (zoneout.h) and per-sequence
// lengths. direction_kernels.cpp compiles this file once per instruction set (per_isa.h); no
// system headers here (it is included inside namespaces).

#include "activations.h"
#include "zoneout.h"
#include "cells/rnn.h"
#include "cells/leaky_rnn.h"
#include "cells/lstm.h"
#include "cells/peephole_lstm.h"
#include "cells/layernorm.h"
#include "cells/layernorm_lstm.h"
#include "cells/gru.h"
#include "cells/layernorm_gru.h"
#include "cells/skip_rnn.h"

template <typename T>
void fwd_rows(const VStep<T>& s) {
  const int H = s.H, G = s.G;
  T* hn = s.tmp;
  T* cn = s.tmp + H;
  for (int b = 0; b < s.B; ++b) {
    T* hb = s.h + int64_t(b) * H;
    T* ob = s.out + int64_t(b) * H;
    if (s.len && s.t >= s.len[b]) {  // past this sequence's end: the state passes through
      std::memset(ob, 0, sizeof(T) * H);
      continue;
    }
    T* cb = s.c ? s.c + int64_t(b) * H : nullptr;
    const T* ab = s.a + int64_t(b) * G;
    T* ub = s.uh ? s.uh + int64_t(b) * G : nullptr;
    T* svb = s.sv + int64_t(b) * s.S;
    switch (s.cell) {  // the cell's row: the candidate state (hn, cn) and what its backward reads
      case LSTM: lstm_fwd<T, true, false>(ab, svb, cb, cn, hn, nullptr, svb + 4 * H, H, H); break;
      case LSTM_PEEPHOLE: peephole_lstm_fwd(ab, cb, s.p[0], hn, cn, svb, H); break;
      case LSTM_LN:
        layernorm_lstm_fwd(ab, ub, s.p[0], s.p[1], s.p[2], s.p[3], cb, hn, cn, svb, H);
        break;
      case GRU: gru_fwd<T, true, false>(ab, ub, H, s.p[0], hb, hn, nullptr, svb, H, H); break;
      case GRU_LN: layernorm_gru_fwd(ab, ub, s.p[0], s.p[1], s.p[2], hb, hn, svb, H); break;
      case RNN_LEAKY_TANH: leaky_rnn_fwd<T, false>(ab, s.p[0], hb, hn, svb, H); break;
      case RNN_LEAKY_RELU: leaky_rnn_fwd<T, true>(ab, s.p[0], hb, hn, svb, H); break;
      case RNN_RELU: rnn_fwd<T, true, false>(ab, svb, hn, nullptr, H); break;
      default: rnn_fwd<T, false, false>(ab, svb, hn, nullptr, H); break;
    }
    zone_mix(hb, hn, s.zh ? s.zh + int64_t(b) * H : nullptr, s.rh, H);
    if (cb) zone_mix(cb, cn, s.zc ? s.zc + int64_t(b) * H : nullptr, s.rc, H);
    std::memcpy(ob, hb, sizeof(T) * H);  // the output is the state after zoneout
  }
}

template <typename T>
void bwd_rows(const VStep<T>& s) {
  const int H = s.H, G = s.G;
  T* dhn = s.tmp;
  T* dcn = s.tmp + H;
  T* scratch = s.tmp + 2 * H;
  for (int b = 0; b < s.B; ++b) {
    if (s.len && s.t >= s.len[b]) {  // state passed through: so do the gradients
      std::memset(s.dgx + int64_t(b) * G, 0, sizeof(T) * G);
      if (s.dgh != s.dgx) std::memset(s.dgh + int64_t(b) * G, 0, sizeof(T) * G);
      continue;
    }
    T* dhb = s.dh + int64_t(b) * H;
    T* dcb = s.dc ? s.dc + int64_t(b) * H : nullptr;
    const T* ob = s.dout + int64_t(b) * H;
#pragma omp simd
    for (int j = 0; j < H; ++j) dhb[j] += ob[j];  // h_t feeds the output and step t+1
    zone_back(dhb, dhn, s.zh ? s.zh + int64_t(b) * H : nullptr, s.rh, H);
    if (dcb) zone_back(dcb, dcn, s.zc ? s.zc + int64_t(b) * H : nullptr, s.rc, H);
    const T* svb = s.sv + int64_t(b) * s.S;
    const T* hp = s.hprev + int64_t(b) * H;
    const T* cp = s.cprev ? s.cprev + int64_t(b) * H : nullptr;
    T* gx = s.dgx + int64_t(b) * G;
    T* gh = s.dgh + int64_t(b) * G;
    switch (s.cell) {  // the cell's row backward: gate gradients, direct terms added to dhb, dcb
      case LSTM:
        lstm_bwd<T, false>(svb, cp, svb + 4 * H, nullptr, dhn, dcn, dcb, gx, H, H);
        break;
      case LSTM_PEEPHOLE: peephole_lstm_bwd(svb, cp, s.p[0], dhn, dcn, gx, dcb, s.dp[0], H); break;
      case LSTM_LN:
        layernorm_lstm_bwd(svb, cp, s.p[0], s.p[2], dhn, dcn, gx, gh, dcb, s.dp[0], s.dp[1],
                           s.dp[2], s.dp[3], scratch, H);
        break;
      case GRU: gru_bwd<T, false>(svb, hp, nullptr, dhn, gx, gh, dhb, H, H); break;
      case GRU_LN:
        layernorm_gru_bwd(svb, hp, s.p[1], dhn, gx, gh, dhb, s.dp[1], s.dp[2], s.dp[0], H);
        break;
      case RNN_LEAKY_TANH: leaky_rnn_bwd<T, false>(svb, s.p[0], hp, dhn, gx, dhb, s.dp[0], H); break;
      case RNN_LEAKY_RELU: leaky_rnn_bwd<T, true>(svb, s.p[0], hp, dhn, gx, dhb, s.dp[0], H); break;
      case RNN_RELU: rnn_bwd<T, true, false>(svb, nullptr, dhn, gx, H); break;
      default: rnn_bwd<T, false, false>(svb, nullptr, dhn, gx, H); break;
    }
  }
}

#include "step_mm.h"
#include "step_mm_packed.h"

// Non-template entry points for the dispatch table.
void fwd_f(const VStep<float>& s) { fwd_rows<float>(s); }
void fwd_d(const VStep<double>& s) { fwd_rows<double>(s); }
void bwd_f(const VStep<float>& s) { bwd_rows<float>(s); }
void bwd_d(const VStep<double>& s) { bwd_rows<double>(s); }
void lnx_fwd_f(int64_t n, int G, float* u, float* xh, float* rs, const float* g, const float* s,
               const float* b1, const float* b2) { lnx_fwd<float>(n, G, u, xh, rs, g, s, b1, b2); }
void lnx_fwd_d(int64_t n, int G, double* u, double* xh, double* rs, const double* g,
               const double* s, const double* b1, const double* b2) {
  lnx_fwd<double>(n, G, u, xh, rs, g, s, b1, b2);
}
void lnx_bwd_f(int64_t n, int G, float* d, const float* xh, const float* rs, const float* g,
               float* dg, float* ds) { lnx_bwd<float>(n, G, d, xh, rs, g, dg, ds); }
void lnx_bwd_d(int64_t n, int G, double* d, const double* xh, const double* rs, const double* g,
               double* dg, double* ds) { lnx_bwd<double>(n, G, d, xh, rs, g, dg, ds); }
