// The per-step elementwise passes and the small-batch step GEMM of the fused engine.
// layer_kernels.cpp includes this file three times, inside namespaces isa_avx512, isa_avx2 and
// isa_base, each under its own `#pragma GCC target`, and picks one at run time from the CPU's
// features: portable builds (no -march=native) that still use the machine's vector width.
// It must not include headers (it is included inside namespaces); the activations are
// activations.h's, included beside it.

// The row functions run over n (`units`) hidden units (all H, or one thread's slice, with every pointer
// moved to the slice's first unit); H is the stride between gates.

// One LSTM row: gates a = (i, f, g, o) pre-activations in, activations out; c, h updated.
template <typename T, bool KEEP>
RK_INLINE void lstm_row(T* __restrict a, T* __restrict c, T* __restrict h, T* __restrict out,
                     T* __restrict tanh_c, int n, int H) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
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

// One GRU row: a = x-side pre-activations (r, z, n); gh = h W_hh^T (no bias), its gates ghs
// apart; hin = h before the step (h itself, or another buffer when threads share the step).
template <typename T, bool KEEP>
RK_INLINE void gru_row(const T* __restrict a, const T* __restrict gh, int ghs,
                       const T* __restrict bhh,
                       const T* hin, T* h, T* __restrict out, T* __restrict save, int units,
                       int H) {
#pragma omp simd
  for (int j = 0; j < units; ++j) {
    const T br = bhh[j], bz = bhh[H + j], bn = bhh[2 * H + j];
    const T r = act_sigmoid(a[j] + gh[j] + br);              // r = s(W_ir x + W_hr h)
    const T z = act_sigmoid(a[H + j] + gh[ghs + j] + bz);    // z = s(W_iz x + W_hz h)
    const T hn = gh[2 * ghs + j] + bn;                       // hn = W_hn h + b_hn
    const T n = act_tanh(a[2 * H + j] + r * hn);             // n = tanh(W_in x + r hn)
    const T hnew = (T(1) - z) * n + z * hin[j];              // h = (1 - z) n + z h_prev
    if (KEEP) {
      save[j] = r;
      save[H + j] = z;
      save[2 * H + j] = n;
      save[3 * H + j] = hn;
    }
    h[j] = hnew;
    out[j] = hnew;
  }
}

template <typename T, bool RELU>
RK_INLINE void rnn_row(T* __restrict a, T* __restrict h, T* __restrict out, int n) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T hn = RELU ? (a[j] > T(0) ? a[j] : T(0)) : act_tanh(a[j]);  // h = act(a)
    a[j] = hn;
    h[j] = hn;
    out[j] = hn;
  }
}

// LSTM row. In: dh (carried from t+1, plus dout), dc carried. Out: dG = d(i,f,g,o pre-act),
// dh <- 0 (the GEMM adds dG W_hh), dc <- dc_prev.
template <typename T>
RK_INLINE void lstm_back_row(const T* __restrict a, const T* __restrict cprev,
                          const T* __restrict tanh_c, const T* __restrict dout,
                          T* __restrict dh, T* __restrict dc, T* __restrict dg, int n, int H) {
#pragma omp simd
  for (int j = 0; j < n; ++j) {
    const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], tc = tanh_c[j];
    const T dh_t = dh[j] + dout[j];                     // h feeds the output and step t+1
    const T d_o = dh_t * tc;                            // through h = o * tanh(c)
    const T dc_t = dc[j] + dh_t * o * (T(1) - tc * tc); // through h = o * tanh(c)
    const T d_i = dc_t * g;                             // through c = f * c_prev + i * g
    const T d_g = dc_t * i;
    const T d_f = dc_t * cprev[j];
    dc[j] = dc_t * f;                                   // dc_prev, through c = f * c_prev + ...
    dg[j] = d_i * i * (T(1) - i);                       // through i = sigmoid(a_i)
    dg[H + j] = d_f * f * (T(1) - f);                   // through f = sigmoid(a_f)
    dg[2 * H + j] = d_g * (T(1) - g * g);               // through g = tanh(a_g)
    dg[3 * H + j] = d_o * o * (T(1) - o);               // through o = sigmoid(a_o)
    dh[j] = T(0);
  }
}

// GRU row. a = (r, z, n, hn) saved by the forward. dgx = gradient of the x-side
// pre-activations (W_i* x + b_i*), dgh = of the h-side ones (W_h* h + b_h*); they differ in n only.
template <typename T>
RK_INLINE void gru_back_row(const T* __restrict a, const T* __restrict hprev,
                         const T* __restrict dout, T* __restrict dh, T* __restrict dgx,
                         T* __restrict dgh, int units, int H) {
#pragma omp simd
  for (int j = 0; j < units; ++j) {
    const T r = a[j], z = a[H + j], n = a[2 * H + j], hn = a[3 * H + j];
    const T dh_t = dh[j] + dout[j];
    const T d_n = dh_t * (T(1) - z);                    // through h = (1 - z) n + z h_prev
    const T d_z = dh_t * (hprev[j] - n);                // through h = (1 - z) n + z h_prev
    const T d_an = d_n * (T(1) - n * n);                // through n = tanh(a_n)
    const T d_hn = d_an * r;                            // through a_n = W_in x + r * hn
    const T d_r = d_an * hn;                            // through a_n = W_in x + r * hn
    const T d_ar = d_r * r * (T(1) - r);                // through r = sigmoid(a_r)
    const T d_az = d_z * z * (T(1) - z);                // through z = sigmoid(a_z)
    dgx[j] = d_ar;
    dgx[H + j] = d_az;
    dgx[2 * H + j] = d_an;
    dgh[j] = d_ar;
    dgh[H + j] = d_az;
    dgh[2 * H + j] = d_hn;
    dh[j] = dh_t * z;                                   // direct path of h_prev; GEMM adds the rest
  }
}

template <typename T>
RK_INLINE void rnn_back_row(bool relu, const T* __restrict hnew, const T* __restrict dout,
                         T* __restrict dh, T* __restrict dg, int n) {
  if (relu) {
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      const T dh_t = dh[j] + dout[j];
      dg[j] = hnew[j] > T(0) ? dh_t : T(0);             // through h = relu(a)
      dh[j] = T(0);
    }
  } else {
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      const T dh_t = dh[j] + dout[j];
      dg[j] = dh_t * (T(1) - hnew[j] * hnew[j]);        // through h = tanh(a)
      dh[j] = T(0);
    }
  }
}

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
      lstm_row<T, KEEP>(ab, cb, hb, ob, KEEP ? s.tanhc + int64_t(b) * H : nullptr, n, H);
    } else if (s.mode == GRU) {
      gru_row<T, KEEP>(ab, s.gh + int64_t(b) * s.ldgh, s.ghs, s.b_hh, hin, hb, ob,
                       KEEP ? s.act + int64_t(b) * 4 * H : nullptr, n, H);
    } else if (s.mode == RNN_TANH) {
      rnn_row<T, false>(ab, hb, ob, n);
    } else {
      rnn_row<T, true>(ab, hb, ob, n);
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
      lstm_back_row(ab, s.cprev + int64_t(b) * H, s.tanhc + int64_t(b) * H, db, dhb,
                    s.dc + int64_t(b) * H, s.dgx + int64_t(b) * G, n, H);
    } else if (s.mode == GRU) {
      gru_back_row(ab, s.hprev + int64_t(b) * H, db, dhb, s.dgx + int64_t(b) * G,
                   s.dgh + int64_t(b) * G, n, H);
    } else {
      rnn_back_row(s.mode == RNN_RELU, ab, db, dhb, s.dgx + int64_t(b) * G, n);
    }
  }
}

#include "step_mm.h"

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
