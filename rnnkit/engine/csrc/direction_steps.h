// One whole step (all rows of the batch) of the variant kernels, forward and backward, with
// zoneout and per-sequence lengths; and the x-side LayerNorm over all T*B rows at once.
// direction_kernels.cpp includes the math, the row files and this file once per instruction set, each
// inside its own namespace under `#pragma GCC target`; no headers here.

// Zoneout on one state field: state <- mask ? state : cand (training), or
// state <- rate * state + (1 - rate) * cand (evaluation), or state <- cand (off).
template <typename T>
RK_INLINE void zone_mix(T* __restrict state, const T* __restrict cand,
                        const uint8_t* __restrict mask, T rate, int H) {
  if (mask) {
#pragma omp simd
    for (int j = 0; j < H; ++j) state[j] = mask[j] ? state[j] : cand[j];
  } else if (rate > T(0)) {
#pragma omp simd
    for (int j = 0; j < H; ++j) state[j] = rate * state[j] + (T(1) - rate) * cand[j];
  } else {
    std::memcpy(state, cand, sizeof(T) * H);
  }
}

// Backward of zone_mix: d_cand = d * (1 - m), and the carried gradient of the old state is
// set to d * m (the cell's backward then adds its own paths to it).
template <typename T>
RK_INLINE void zone_back(T* __restrict d_state, T* __restrict d_cand,
                         const uint8_t* __restrict mask, T rate, int H) {
  if (mask) {
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      d_cand[j] = mask[j] ? T(0) : d_state[j];
      d_state[j] = mask[j] ? d_state[j] : T(0);
    }
  } else {
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      d_cand[j] = (T(1) - rate) * d_state[j];
      d_state[j] = rate * d_state[j];
    }
  }
}

template <typename T>
void fwd_rows(const VStep<T>& s) {
  const int H = s.H, G = s.G;
  T* hn = s.tmp;
  T* cn = s.tmp + H;
  const bool relu = s.cell == RNN_RELU || s.cell == RNN_LEAKY_RELU;
  for (int b = 0; b < s.B; ++b) {
    T* hb = s.h + int64_t(b) * H;
    T* ob = s.out + int64_t(b) * H;
    if (s.len && s.t >= s.len[b]) {  // past this sequence's end: the state passes through
      std::memset(ob, 0, sizeof(T) * H);
      continue;
    }
    T* cb = s.c ? s.c + int64_t(b) * H : nullptr;
    const T* ab = s.a + int64_t(b) * G;
    const T* ub = s.uh ? s.uh + int64_t(b) * G : nullptr;
    T* svb = s.sv + int64_t(b) * s.S;
    switch (s.cell) {
      case LSTM: lstm_fwd_row<T, false>(ab, cb, nullptr, hn, cn, svb, H); break;
      case LSTM_PEEPHOLE: lstm_fwd_row<T, true>(ab, cb, s.p[0], hn, cn, svb, H); break;
      case LSTM_LN:
        ln_lstm_fwd_row(ab, ub, s.p[0], s.p[1], s.p[2], s.p[3], cb, hn, cn, svb, H);
        break;
      case GRU: gru_fwd_row<T, false>(ab, ub, s.p[0], nullptr, nullptr, hb, hn, svb, H); break;
      case GRU_LN: gru_fwd_row<T, true>(ab, ub, s.p[0], s.p[1], s.p[2], hb, hn, svb, H); break;
      case RNN_LEAKY_TANH:
      case RNN_LEAKY_RELU: rnn_fwd_row<T, true>(relu, ab, s.p[0], hb, hn, svb, H); break;
      default: rnn_fwd_row<T, false>(relu, ab, nullptr, hb, hn, svb, H); break;
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
  const bool relu = s.cell == RNN_RELU || s.cell == RNN_LEAKY_RELU;
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
    switch (s.cell) {
      case LSTM: lstm_bwd_row<T, false>(svb, cp, nullptr, dhn, dcn, gx, dcb, nullptr, H); break;
      case LSTM_PEEPHOLE: lstm_bwd_row<T, true>(svb, cp, s.p[0], dhn, dcn, gx, dcb, s.dp[0], H); break;
      case LSTM_LN:
        ln_lstm_bwd_row(svb, cp, s.p[0], s.p[2], dhn, dcn, gx, gh, dcb, s.dp[0], s.dp[1],
                        s.dp[2], s.dp[3], scratch, H);
        break;
      case GRU:
        gru_bwd_row<T, false>(svb, hp, nullptr, dhn, gx, gh, dhb, nullptr, nullptr, nullptr, H);
        break;
      case GRU_LN:
        gru_bwd_row<T, true>(svb, hp, s.p[1], dhn, gx, gh, dhb, s.dp[1], s.dp[2], s.dp[0], H);
        break;
      case RNN_LEAKY_TANH:
      case RNN_LEAKY_RELU: rnn_bwd_row<T, true>(relu, svb, s.p[0], hp, dhn, gx, dhb, s.dp[0], H); break;
      default: rnn_bwd_row<T, false>(relu, svb, nullptr, hp, dhn, gx, dhb, nullptr, H); break;
    }
  }
}

// x side of the LayerNorm cells, all rows at once: u (rows, G) = W x in, a = LN(u) g + s + b1
// (+ b2) out (in place); xhat (rows, G) and rstd (rows) kept for the backward.
template <typename T>
void lnx_fwd(int64_t rows, int G, T* u, T* xhat, T* rstd, const T* g, const T* s, const T* b1,
             const T* b2) {
  for (int64_t r = 0; r < rows; ++r) {
    T* __restrict ur = u + r * G;
    T* __restrict xr = xhat + r * G;
    rstd[r] = ln_row(ur, G, xr);                              // xhat = norm(W x)
#pragma omp simd
    for (int j = 0; j < G; ++j) {
      T v = xr[j] * g[j];                                     // a = xhat g + s + b
      if (s) v += s[j];
      if (b1) v += b1[j];
      if (b2) v += b2[j];
      ur[j] = v;
    }
  }
}

// Backward of lnx_fwd: d (rows, G) = dL/da in, dL/du out (in place); dg, ds accumulate.
template <typename T>
void lnx_bwd(int64_t rows, int G, T* d, const T* xhat, const T* rstd, const T* g, T* dg, T* ds) {
  for (int64_t r = 0; r < rows; ++r) {
    T* __restrict dr = d + r * G;
    const T* __restrict xr = xhat + r * G;
#pragma omp simd
    for (int j = 0; j < G; ++j) {
      dg[j] += dr[j] * xr[j];                                 // through a = xhat g + s
      ds[j] += dr[j];
      dr[j] *= g[j];
    }
    ln_row_back(dr, xr, rstd[r], G);                          // through xhat = norm(W x)
  }
}

#include "step_mm.h"

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
