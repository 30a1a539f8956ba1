// The fused CPU kernels of the cell variants: peephole LSTM, LayerNorm LSTM and GRU, leaky RNN,
// skip RNN (direction_skip.h), and the standard RNN/LSTM/GRU with recurrent dropout and zoneout.
// One direction of one layer per call; forward and hand-written BPTT backward.
//
// Shape alphabet: T time, B batch, I input size, H hidden size, G gate width, S saved floats
// per row and step.
//
// Forward of one direction:
//   xp = x W_ih^T (+ biases), or LN(x W_ih^T) g + s + b       one GEMM over T*B rows  (T, B, G)
//   for each step t (reversed for the reverse direction):
//     h_in = h * h_drop                                     (recurrent dropout, when on)
//     xp[t] += h_in W_hh^T   or   uh = h_in W_hh^T         one step product          (B, G)
//     candidate state, zoneout, lengths: one elementwise pass over the rows
// Backward, steps in the opposite order: one elementwise pass (the BPTT equations), then
//   dh_prev += (dG_h[t] W_hh) * h_drop; at the end the weight gradients as GEMMs over T*B rows.

#include <torch/extension.h>

#include "cells.h"
#include "checks.h"
#include "engine_common.h"
#include "isa.h"
#include "tuning.h"
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>


namespace {

// The thresholds that choose a schedule (tuning.h), read-only here.
const rk_tuning::Tuning& tuned = rk_tuning::current;

using namespace rk_cells;  // the cell codes (cells.h)

using rk_common::BlasThreads;
using rk_common::gemm;
using rk_common::pooled_empty;

// Everything one elementwise step needs; pointers already at step t.
template <typename T>
struct VStep {
  int64_t cell;
  int B, H, G, S, t;
  const int64_t* len;     // (B) or null
  const T* a;             // (B, G) x side (+ U h_in for RNN/LSTM/peephole/leaky)
  T* uh;                  // (B, G) U h_in for GRU and LayerNorm cells (LN GRU: normalised in place)
  T* h;                   // (B, H) state
  T* c;                   // (B, H) cell state (LSTM family) or null
  T* out;                 // (B, H)
  T* sv;                  // (B, S) saved for the backward
  const T* p[4];          // cell parameters (see the row files)
  const uint8_t* zh;      // (B, H) zoneout mask of h at t (training) or null
  const uint8_t* zc;      // (B, H) of c
  T rh, rc;               // zoneout rates in evaluation (0: off)
  const T* hprev;         // (B, H) state before t
  const T* cprev;
  const T* dout;          // (B, H)
  T* dh;                  // (B, H) carried dL/dh
  T* dc;                  // (B, H) carried dL/dc
  T* dgx;                 // (B, G) dL/d(x-side pre-activations)
  T* dgh;                 // (B, G) dL/d(U h_in) (== dgx when they coincide)
  T* dp[4];               // parameter gradients, accumulated
  T* tmp;                 // scratch (3H)
};

// One elementwise step of the skip RNN; pointers already at step t.
template <typename T>
struct SkipStep {
  int B, H, K, t;
  bool relu;
  const int64_t* len;
  T* a;                   // (B, H) pre-activations
  T* reg;                 // (B, K*H) state register [h_{t-1}, ..., h_{t-K}]
  T* out;                 // (B, H)
  T* v;                   // (B, H) act(a), saved
  const uint8_t* zh;      // (B, H) zoneout mask of h, or null
  const uint8_t* zp;      // (B, (K-1)*H) of past, or null
  T rh, rp;               // zoneout rates in evaluation (0: off)
  const T* dout;          // (B, H)
  T* dreg;                // (B, K*H) carried dL/d(register)
  T* da;                  // (B, H) dL/da
  T* tmp;                 // scratch (K*H)
};

#define RK_ISA_BODY "direction_steps.h"
#include "per_isa.h"

template <typename T>
struct Table {
  void (*fwd)(const VStep<T>&);
  void (*bwd)(const VStep<T>&);
  void (*lnx_fwd)(int64_t, int, T*, T*, T*, const T*, const T*, const T*, const T*);
  void (*lnx_bwd)(int64_t, int, T*, const T*, const T*, const T*, T*, T*);
  void (*mm)(int, int, int, const T*, int, const T*, int, T*, int, bool);
  void (*pack)(int, int, const T*, int, bool, T*);
  void (*mm_packed)(int, int, int, const T*, int, const T*, T*, int, bool, const T*);
  int pack_width;
};

struct Dispatch {
  Table<float> f;
  Table<double> d;
  const char* isa;
};

#define RK_TABLES(NS)                                                                   \
  Table<float>{NS::fwd_f, NS::bwd_f, NS::lnx_fwd_f, NS::lnx_bwd_f, NS::mm_f,            \
               NS::pack_f, NS::mm_packed_f, NS::pack_width<float>()},                   \
      Table<double>{NS::fwd_d, NS::bwd_d, NS::lnx_fwd_d, NS::lnx_bwd_d, NS::mm_d,       \
                    NS::pack_d, NS::mm_packed_d, NS::pack_width<double>()}

const Dispatch& isa() {
  static const Dispatch chosen = [] {
    switch (rk_isa::chosen()) {
      case rk_isa::Isa::avx512: return Dispatch{RK_TABLES(isa_avx512), "avx512"};
      case rk_isa::Isa::avx2: return Dispatch{RK_TABLES(isa_avx2), "avx2"};
      default: return Dispatch{RK_TABLES(isa_base), "base"};
    }
  }();
  return chosen;
}
template <typename T> const Table<T>& table();
template <> const Table<float>& table<float>() { return isa().f; }
template <> const Table<double>& table<double>() { return isa().d; }

template <typename T>
struct SkipTable {
  void (*fwd)(const SkipStep<T>&);
  void (*bwd)(const SkipStep<T>&);
};
template <typename T> const SkipTable<T>& skip_table();
#define RK_SKIP_TABLE(T, SUFFIX)                                                          \
  template <> const SkipTable<T>& skip_table<T>() {                                       \
    static const SkipTable<T> chosen = [] {                                               \
      const std::string name = isa().isa;                                                 \
      if (name == "avx512") return SkipTable<T>{isa_avx512::skip_fwd_##SUFFIX,             \
                                                isa_avx512::skip_bwd_##SUFFIX};           \
      if (name == "avx2") return SkipTable<T>{isa_avx2::skip_fwd_##SUFFIX,                 \
                                              isa_avx2::skip_bwd_##SUFFIX};               \
      return SkipTable<T>{isa_base::skip_fwd_##SUFFIX, isa_base::skip_bwd_##SUFFIX};       \
    }();                                                                                  \
    return chosen;                                                                        \
  }
RK_SKIP_TABLE(float, f)
RK_SKIP_TABLE(double, d)

// The thresholds that choose a schedule live in tuning.h (rk_tuning::current): per-step
// products below direction_own_step_macs use the register-blocked kernel (no repacking of W at
// each step), split over torch's threads from parallel_step_macs; larger ones call BLAS.

// The register-blocked per-step product c (B, N) (+)= a (B, K) m (K, N) (m row-major, N
// columns), its columns split over torch's threads from tuned.parallel_step_macs.
template <typename T>
void own_mm(int B, int K, int N, const T* a, int lda, const T* m, T* c, int ldc, bool acc) {
  const Table<T>& k = table<T>();
  const int64_t macs = int64_t(B) * N * K;
  rk_common::split_columns(N, macs, tuned.parallel_step_macs, [&](int n0, int n1) {
    k.mm(B, K, n1 - n0, a, lda, m + n0, N, c + n0, ldc, acc);
  });
}

// The same product on m packed in panels (step_mm_packed.h; rk_common::pack_panels).
template <typename T>
void own_mm_packed(int B, int K, int N, const T* a, int lda, const T* mp, T* c, int ldc,
                   bool acc) {
  const Table<T>& k = table<T>();
  const int64_t macs = int64_t(B) * N * K;
  rk_common::split_columns(N, macs, tuned.parallel_step_macs, [&](int n0, int n1) {
    k.mm_packed(B, K, n1 - n0, a, lda, mp + int64_t(n0) * K, c + n0, ldc, acc, nullptr);
  });
}

// Batches from 2 up to tuned.direction_team_batch, with per-step products of at least
// tuned.direction_team_macs multiply-adds on the register-blocked kernel, run a layer call's
// step loop on a thread team (one OpenMP region for all steps, rk_common::run_team): each
// thread computes its columns of the step's product, then, after a barrier, the row pass of
// its rows of the batch (a LayerNorm needs whole rows), then meets the others again.

template <typename T>
int variant_team(int B, int G, int H, int Tn, bool blocked) {
  if (!blocked || Tn < 2 || B < 2 || B > tuned.direction_team_batch ||
      int64_t(B) * G * H < tuned.direction_team_macs || rk_common::contended())
    return 1;
  return std::min(rk_common::team_size(G, 64 / int(sizeof(T))), B);
}

// Larger batches, with step products in the layer kernels' split range, split their rows over
// torch's threads for the whole step loop (a sequence's rows never read another's): each
// thread runs every step on its rows alone, its own products and row passes, no barrier. The
// rule and its thresholds are the layer kernels' (`split_threads`, tuned.split_rows).
int row_scratch_threads();

template <typename T>
int variant_split(int B, int G, int H, int Tn) {
  const int64_t macs = int64_t(B) * G * H;
  if (Tn < 2 || tuned.split_rows <= 0 || B <= tuned.direction_team_batch ||
      macs < tuned.team_macs || macs > tuned.team_large_macs || at::in_parallel_region() ||
      rk_common::contended())
    return 1;
  return std::max(1, std::min({row_scratch_threads(), int(B / tuned.split_rows), 8}));
}

// The forward row pass of a step over rows [b0, b1) of the batch, with its own scratch.
template <typename T>
VStep<T> forward_rows_from(VStep<T> s, int b0, int b1, T* tmp) {
  const int64_t H = s.H, G = s.G;
  s.B = b1 - b0;
  if (s.len) s.len += b0;
  s.a += b0 * G;
  if (s.uh) s.uh += b0 * G;
  s.h += b0 * H;
  if (s.c) s.c += b0 * H;
  s.out += b0 * H;
  s.sv += b0 * s.S;
  if (s.zh) s.zh += b0 * H;
  if (s.zc) s.zc += b0 * H;
  s.tmp = tmp;
  return s;
}

// From this many gate elements per step the forward row pass splits its rows over torch's
// threads (lower than the plain kernels' threshold: these rows do more work per element).

// The forward row pass of one step; `tmp` holds 3H of scratch per thread (row_scratch_threads).
template <typename T>
void forward_rows(const VStep<T>& s, T* tmp) {
  const int64_t elems = int64_t(s.B) * s.G;
  const int64_t min_elems = tuned.direction_parallel_row_elems;
  rk_common::split_rows(s.B, elems, min_elems, [&](int b0, int b1, int tid) {
    table<T>().fwd(forward_rows_from(s, b0, b1, tmp + int64_t(tid) * 3 * s.H));
  });
}

int row_scratch_threads() { return std::max(1, at::get_num_threads()); }

// The backward row pass of a step over rows [b0, b1), with its own scratch and its own
// parameter-gradient accumulators.
template <typename T>
VStep<T> backward_rows_from(VStep<T> s, int b0, int b1, T* tmp, T* const* dp) {
  const int64_t H = s.H, G = s.G;
  s.B = b1 - b0;
  if (s.len) s.len += b0;
  s.sv += b0 * s.S;
  s.hprev += b0 * H;
  if (s.cprev) s.cprev += b0 * H;
  if (s.zh) s.zh += b0 * H;
  if (s.zc) s.zc += b0 * H;
  s.dout += b0 * H;
  s.dh += b0 * H;
  if (s.dc) s.dc += b0 * H;
  const bool same = s.dgh == s.dgx;
  s.dgx += b0 * G;
  s.dgh = same ? s.dgx : s.dgh + b0 * G;
  s.tmp = tmp;
  for (int i = 0; i < 4; ++i) s.dp[i] = dp[i];
  return s;
}

// Per-thread partial sums of the parameter gradients the backward rows accumulate: (threads, n)
// for each, added into the real ones by `finish`. The rows of one thread write only its own.
template <typename T>
struct GradParts {
  std::vector<at::Tensor> parts;
  std::vector<int64_t> sizes;
  GradParts(const std::vector<at::Tensor>& dp, int threads) {
    for (const auto& g : dp) {
      parts.push_back(at::zeros({threads, g.numel()}, g.options()));
      sizes.push_back(g.numel());
    }
  }
  void pointers(int tid, T** out) const {
    for (size_t i = 0; i < parts.size(); ++i) out[i] = parts[i].data_ptr<T>() + tid * sizes[i];
  }
  void finish(std::vector<at::Tensor>& dp) const {
    for (size_t i = 0; i < parts.size(); ++i) dp[i].view({-1}).add_(parts[i].sum(0));
  }
};

// The backward row pass of one step, split over torch's threads like `forward_rows`; the
// parameter gradients go to the thread's own partial sums (`parts.finish` adds them up).
template <typename T>
void backward_rows(const VStep<T>& s, T* tmp, const GradParts<T>& parts) {
  const int64_t elems = int64_t(s.B) * s.G;
  const int64_t min_elems = tuned.direction_parallel_row_elems;
  rk_common::split_rows(s.B, elems, min_elems, [&](int b0, int b1, int tid) {
    T* dp[4] = {nullptr, nullptr, nullptr, nullptr};
    parts.pointers(tid, dp);
    table<T>().bwd(backward_rows_from(s, b0, b1, tmp + int64_t(tid) * 3 * s.H, dp));
  });
}

int gate_count(int64_t cell) {
  if (cell == LSTM || cell == LSTM_PEEPHOLE || cell == LSTM_LN) return 4;
  return (cell == GRU || cell == GRU_LN) ? 3 : 1;
}
bool has_c(int64_t cell) { return gate_count(cell) == 4; }
bool separate_uh(int64_t cell) { return cell == GRU || cell == GRU_LN || cell == LSTM_LN; }
bool layer_norm(int64_t cell) { return cell == LSTM_LN || cell == GRU_LN; }
int save_width(int64_t cell, int H) {
  switch (cell) {
    case LSTM: return 5 * H;           // gates, tanh(c)
    case LSTM_PEEPHOLE: return 6 * H;  // + c
    case LSTM_LN: return 10 * H + 16;  // + rstd_h, rstd_c, padded to 64 bytes
    case GRU: return 4 * H;
    case GRU_LN: return 7 * H + 16;    // + rstd_h, padded to 64 bytes
    default: return H;
  }
}

template <typename T>
const T* ptr(const at::Tensor& t) { return t.numel() ? t.data_ptr<T>() : nullptr; }

// The per-cell parameter pointers of VStep::p, in the row functions' order. `extra` holds
// tensors computed here (leaky rates, a zero b_hh) so they outlive the call.
template <typename T>
void cell_params(int64_t cell, const std::vector<at::Tensor>& w, int G, VStep<T>& s,
                 std::vector<at::Tensor>& extra, const at::TensorOptions& opt) {
  if (cell == LSTM_PEEPHOLE) s.p[0] = ptr<T>(w[4]);
  if (cell == LSTM_LN) {
    s.p[0] = ptr<T>(w[5]); s.p[1] = ptr<T>(w[8]); s.p[2] = ptr<T>(w[6]); s.p[3] = ptr<T>(w[9]);
  }
  if (cell == GRU || cell == GRU_LN) {
    if (!w[3].numel()) extra.push_back(at::zeros({G}, opt));
    s.p[0] = w[3].numel() ? ptr<T>(w[3]) : extra.back().template data_ptr<T>();
  }
  if (cell == GRU_LN) { s.p[1] = ptr<T>(w[5]); s.p[2] = ptr<T>(w[7]); }
  if (cell == RNN_LEAKY_TANH || cell == RNN_LEAKY_RELU) {
    extra.push_back(at::sigmoid(w[4]));            // a = sigmoid(rate_logit)
    s.p[0] = extra.back().template data_ptr<T>();
  }
}

#include "onednn.h"
#include "direction_checks.h"
#include "direction_forward.h"
#include "direction_driver.h"
#include "direction_skip.h"

}  // namespace

namespace rk_bind {

// The direction kernels' entry points, on the engine's one module (bindings.cpp).
void direction_kernels(pybind11::module_& m) {
  m.def("dir_forward", &dir_forward, "forward of one direction of one layer",
        py::call_guard<py::gil_scoped_release>());
  m.def("dir_backward", &dir_backward, "BPTT backward of one direction of one layer",
        py::call_guard<py::gil_scoped_release>());
  m.def("skip_forward", &skip_forward, "skip RNN: forward of one direction of one layer",
        py::call_guard<py::gil_scoped_release>());
  m.def("skip_backward", &skip_backward, "skip RNN: BPTT backward of one direction",
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace rk_bind
