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

#include "cells.h"
#include "checks.h"
#include "engine_common.h"
#include "isa.h"
#include "tuning.h"
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

extern "C" {
// MKL only (weak): GEMM with one operand packed once and reused; float only.
size_t sgemm_pack_get_size_(const char* id, const int* m, const int* n, const int* k)
    __attribute__((weak));
void sgemm_pack_(const char* id, const char* trans, const int* m, const int* n, const int* k,
                 const float* alpha, const float* src, const int* ld, float* dest)
    __attribute__((weak));
void sgemm_compute_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                    const float* a, const int* lda, const float* b, const int* ldb,
                    const float* beta, float* c, const int* ldc) __attribute__((weak));
}


namespace {

// The thresholds that choose a schedule (tuning.h), read-only here.
const rk_tuning::Tuning& tuned = rk_tuning::current;

using namespace rk_cells;  // the cell codes (cells.h)

using rk_common::BlasThreads;
using rk_common::pooled_empty;
using rk_common::gemm;


#include "layer_steps.h"

#define RK_ISA_BODY "layer_rows.h"
#include "per_isa.h"

template <typename T>
struct Kernels {
  void (*fwd_keep)(const FwdStep<T>&);
  void (*fwd_nokeep)(const FwdStep<T>&);
  void (*bwd)(const BwdStep<T>&);
  void (*mm)(int, int, int, const T*, int, const T*, int, T*, int, bool);
  void (*transpose)(const T*, int, int, T*, int);
  void (*mm_nt)(int, int, int, const T*, int, const T*, int, T*, int, bool);
  void (*pack)(int, int, const T*, int, bool, T*);
  void (*mm_packed)(int, int, int, const T*, int, const T*, T*, int, bool, const T*);
  int pack_width;
};

#define RK_TABLE(NS)                                                                     \
  Kernels<float>{NS::fwd_keep_f, NS::fwd_nokeep_f, NS::bwd_f, NS::mm_f,           \
                 NS::transpose_f, NS::mm_nt_f, NS::pack_f,                             \
                 NS::mm_packed_f, NS::pack_width<float>()},                              \
      Kernels<double> {                                                                  \
    NS::fwd_keep_d, NS::fwd_nokeep_d, NS::bwd_d, NS::mm_d, NS::transpose_d,      \
        NS::mm_nt_d, NS::pack_d, NS::mm_packed_d,                                        \
        NS::pack_width<double>()                                                         \
  }

struct Dispatch {
  Kernels<float> f;
  Kernels<double> d;
  const char* isa;
};

Dispatch pick_isa() {
  switch (rk_isa::chosen()) {
    case rk_isa::Isa::avx512: return Dispatch{RK_TABLE(isa_avx512), "avx512"};
    case rk_isa::Isa::avx2: return Dispatch{RK_TABLE(isa_avx2), "avx2"};
    default: return Dispatch{RK_TABLE(isa_base), "base"};
  }
}

const Dispatch& isa() {
  static const Dispatch d = pick_isa();
  return d;
}
template <typename T> const Kernels<T>& kernels();
template <> const Kernels<float>& kernels<float>() { return isa().f; }
template <> const Kernels<double>& kernels<double>() { return isa().d; }

#include "onednn.h"
#include "layer_gemm.h"
#include "layer_schedules.h"
// Saved per direction for the backward (keep == true), all (T, B, *):
//   RNN : act (h_t),          hprev
//   LSTM: act (i, f, g, o),   hprev, cprev, tanh_c
//   GRU : act (r, z, n, hn),  hprev          (hn = W_hn h_prev + b_hn)
template <typename T>
void forward_dir(int64_t mode, int Tn, int Bn, int In, int Hn, const T* x, Dir<T> w,
                 const int64_t* len, bool reverse, T* h, T* c, T* out, int ldo,
                 std::vector<at::Tensor>& saved, bool keep, const at::TensorOptions& opt,
                 bool zero_h0) {
  const int G = gate_count(mode) * Hn;
  const int64_t TB = int64_t(Tn) * Bn;
  const int64_t layer_macs = TB * G * (In + Hn);
  const bool dnn_big = onednn::wanted<T>(TB, layer_macs);
  const bool fold_hh = mode != GRU;
  const Kernels<T>& k = kernels<T>();
  const bool few_steps = Tn <= 2;
  const int split = few_steps ? 1 : split_threads<T>(Bn, G, Hn);
  const int team = few_steps || split > 1 ? 1 : team_threads<T>(Bn, G, Hn);
  const int64_t step_macs = int64_t(Bn) * G * Hn;
  const bool dnn_step = onednn::wanted<T>(Bn, layer_macs) && split == 1 &&
                        (!few_steps || (tuned.few_step_onednn_macs > 0 &&
                                        step_macs >= tuned.few_step_onednn_macs));
  // xp = x W_ih^T + b_ih (+ b_hh) of steps [t0, t0 + count), as a (count, B, G) tensor: one
  // GEMM over all their rows. oneDNN adds the bias itself; after BLAS the row pass adds it
  // (`xb`), in cache, where filling bias rows first cost a pass over all of xp on one thread.
  at::Tensor bias;
  if (w.b_ih && fold_hh) {  // b_ih + b_hh, into a pooled row (no ATen op per call)
    bias = pooled_empty({G}, opt);
    T* __restrict sum = bias.data_ptr<T>();
    for (int j = 0; j < G; ++j) sum[j] = w.b_ih[j] + w.b_hh[j];
  } else if (w.b_ih) {
    bias = w.b_ih_t;
  }
  at::Tensor w_ih_dnn;  // W_ih in oneDNN's layout, made at the first product, for every chunk
  auto project = [&](int t0, int count) -> at::Tensor {
    const int64_t rows = int64_t(count) * Bn;
    const T* xs = x + int64_t(t0) * Bn * In;
    if (dnn_big) {
      const at::Tensor x2 = at::from_blob(const_cast<T*>(xs), {rows, In}, opt);
      if (!w_ih_dnn.defined()) w_ih_dnn = onednn::reorder_once(w.w_ih_t, rows, TB * G * In);
      return onednn::linear(x2, w_ih_dnn, bias, at::Tensor()).view({count, Bn, G});
    }
    at::Tensor xp_t = pooled_empty({count, Bn, G}, opt);
    if (few_steps && rows <= tuned.few_step_rows)
      k.mm_nt(int(rows), In, G, xs, In, w.w_ih, In, xp_t.data_ptr<T>(), G, false);
    else
      gemm(false, true, int(rows), G, In, xs, In, w.w_ih, In, T(0), xp_t.data_ptr<T>(), G);
    return xp_t;
  };
  // The whole xp at once where the backward keeps it (LSTM/RNN activations) or the layer is
  // small; a team computes its own. Otherwise chunks of about tuned.xp_chunk_rows rows, made as the
  // steps reach them: a fresh (T, B, G) buffer of more than 32 MB costs a page fault per 4 KB
  // at every call (glibc maps it anew), where a chunk reuses the memory the last one freed
  // (measured: the (64, 100, 512) LSTM's input products ran 25% faster).
  const int chunk = team > 1 || split > 1 || keep || TB <= 2 * tuned.xp_chunk_rows
                        ? Tn : std::max<int>(1, int(tuned.xp_chunk_rows / Bn));
  at::Tensor xp_t;
  if (team > 1 || split > 1) {  // they compute their own
    if (keep && mode != GRU) xp_t = pooled_empty({Tn, Bn, G}, opt);
  } else if (chunk == Tn) {
    xp_t = project(0, Tn);
  }
  T* xp = xp_t.defined() ? xp_t.data_ptr<T>() : nullptr;
  at::Tensor chunk_t;  // the chunk of xp from time chunk_t0 on
  int chunk_t0 = -1;
  auto xp_at = [&](int t) -> T* {
    if (chunk == Tn) return xp + int64_t(t) * Bn * G;
    if (chunk_t0 < 0 || t < chunk_t0 || t >= chunk_t0 + chunk) {
      chunk_t0 = reverse ? std::max(0, t - chunk + 1) : t;
      chunk_t.reset();  // frees the last chunk first, for the next to reuse its memory
      chunk_t = project(chunk_t0, std::min(chunk, Tn - chunk_t0));
    }
    return chunk_t.data_ptr<T>() + int64_t(t - chunk_t0) * Bn * G;
  };

  // The recurrent weights as the per-step product reads them: W_hh^T (H, G) packed in panels
  // for the register-blocked kernel (the split by rows, batches up to small_batch), else
  // transposed for MKL's packing or BLAS. A call of one or two steps does neither (it would
  // cost more than it saves), and nor does oneDNN, which takes W_hh (G, H) as it is.
  const bool own_step = !few_steps && team == 1 && !dnn_step;
  const bool use_panels = own_step && (split > 1 || Bn <= tuned.small_batch);
  const at::Tensor hh_panels =
      use_panels ? rk_common::pack_panels(k.pack, Hn, G, w.w_hh, Hn, true, opt) : at::Tensor();
  const bool transpose = own_step && !use_panels;
  at::Tensor wt_t = transpose ? pooled_empty({Hn, G}, opt) : at::Tensor();
  T* wt = transpose ? wt_t.data_ptr<T>() : nullptr;
  if (transpose) k.transpose(w.w_hh, G, Hn, wt, G);

  at::Tensor zero_bias_t = w.b_hh ? at::Tensor() : at::zeros({G}, opt);  // GRU without bias
  FwdStep<T> s{};
  s.mode = mode; s.B = Bn; s.H = Hn; s.G = G; s.ldo = ldo; s.len = len; s.n = Hn;
  s.b_hh = w.b_hh ? w.b_hh : zero_bias_t.data_ptr<T>();
  s.xb = team == 1 && !dnn_big && bias.defined() ? bias.data_ptr<T>() : nullptr;
  s.hin = h; s.h = h; s.c = c; s.ghs = Hn; s.ldgh = G;
  s.out = out;  // the base; forward_at moves it to each step
  at::Tensor act_t, hprev_t, cprev_t, tanhc_t, gh_t;
  if (keep) {
    hprev_t = pooled_empty({Tn, Bn, Hn}, opt);
    if (mode == GRU) act_t = pooled_empty({Tn, Bn, 4 * Hn}, opt);
    if (mode == LSTM) {
      cprev_t = pooled_empty({Tn, Bn, Hn}, opt);
      tanhc_t = pooled_empty({Tn, Bn, Hn}, opt);
    }
  }
  if (mode == GRU) {
    gh_t = at::empty({Bn, G}, opt);
    s.gh = gh_t.data_ptr<T>();
  }
  auto rows = keep ? k.fwd_keep : k.fwd_nokeep;
  if (team > 1) {
    forward_team<T>(team, k, rows, s, Tn, reverse, In, x, w,
                    bias.defined() ? bias.data_ptr<T>() : nullptr, xp,
                    keep ? hprev_t.data_ptr<T>() : nullptr, act_t, cprev_t, tanhc_t, opt);
  } else if (split > 1) {
    const at::Tensor ih_panels =  // W_ih^T
        rk_common::pack_panels(k.pack, In, G, w.w_ih, In, true, opt);
    forward_split<T>(split, k, rows, s, Tn, reverse, In, x, ih_panels.data_ptr<T>(),
                     bias.defined() ? bias.data_ptr<T>() : nullptr, xp,
                     hh_panels.data_ptr<T>(),
                     keep ? hprev_t.data_ptr<T>() : nullptr, act_t, cprev_t, tanhc_t, opt);
  } else {
    forward_loop<T>(k, rows, s, Tn, reverse, xp_at, wt, hh_panels, few_steps ? w.w_hh : nullptr,
                    dnn_step ? w.w_hh_t : at::Tensor(), keep ? hprev_t.data_ptr<T>() : nullptr,
                    act_t, cprev_t, tanhc_t, opt, zero_h0);
  }
  if (keep) {
    saved.push_back(mode == GRU ? act_t : xp_t);  // RNN/LSTM: activations over pre-activations
    saved.push_back(hprev_t);
    if (mode == LSTM) {
      saved.push_back(cprev_t);
      saved.push_back(tanhc_t);
    }
  }
}

#include "layer_backward.h"

template <typename T>
Dir<T> dir_weights(const std::vector<at::Tensor>& w, int d) {
  const bool has_bias = w[4 * d + 2].numel() > 0;
  return Dir<T>{w[4 * d], w[4 * d + 1], w[4 * d + 2], w[4 * d + 3],
                w[4 * d].data_ptr<T>(), w[4 * d + 1].data_ptr<T>(),
                has_bias ? w[4 * d + 2].data_ptr<T>() : nullptr,
                has_bias ? w[4 * d + 3].data_ptr<T>() : nullptr};
}

int saved_per_dir(int64_t mode) { return mode == LSTM ? 4 : 2; }

// Forward of one layer, all directions. x (T, B, I); h0, c0 (D, B, H) (c0 empty unless LSTM);
// w = per direction (w_ih, w_hh, b_ih, b_hh), empty biases when the layer has none;
// lengths (B) int64 or empty. Returns out (T, B, D*H), h_n, c_n, then what the backward needs.
std::vector<at::Tensor> contiguous_all(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back(t.contiguous());
  return out;
}

std::vector<at::Tensor> layer_forward(int64_t mode, const at::Tensor& x_in, const at::Tensor& h0,
                                      const at::Tensor& c0, const std::vector<at::Tensor>& w_in,
                                      const at::Tensor& lengths_in, bool keep) {
  rk_checks::layer_forward(mode, x_in, h0, c0, w_in, lengths_in);  // before any pointer
  rk_common::init_threads();
  const at::Tensor x = x_in.contiguous(), lengths = lengths_in.contiguous();
  const std::vector<at::Tensor> w = contiguous_all(w_in);
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const bool zero_state = h0.numel() == 0;  // checked: then c0 is empty too
  const int D = int(w.size() / 4), Hn = zero_state ? w[1].size(1) : h0.size(2);
  auto opt = x.options();
  at::Tensor out = pooled_empty({Tn, Bn, D * Hn}, opt);
  // The final states start as copies of the initial ones (or zeros), without an ATen op.
  auto start = [&](const at::Tensor& s0) {
    at::Tensor s = pooled_empty({D, Bn, Hn}, opt);
    const size_t bytes = s.numel() * s.element_size();
    if (zero_state) {
      std::memset(s.data_ptr(), 0, bytes);
    } else {
      const at::Tensor src = s0.contiguous();
      std::memcpy(s.data_ptr(), src.data_ptr(), bytes);
    }
    return s;
  };
  at::Tensor hT = start(h0);
  at::Tensor cT = mode == LSTM ? start(c0) : at::Tensor();
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{out, hT, mode == LSTM ? cT : at::empty({0}, opt)};
  const int64_t G = gate_count(mode) * Hn;
  BlasThreads threads(int64_t(Tn) * Bn * G * (In + Hn) * D, tuned.serial_layer_macs);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_forward", [&] {
    for (int d = 0; d < D; ++d) {
      scalar_t* c = mode == LSTM ? cT.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn : nullptr;
      forward_dir<scalar_t>(mode, Tn, Bn, In, Hn, x.data_ptr<scalar_t>(), dir_weights<scalar_t>(w, d),
                            len, d == 1, hT.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn, c,
                            out.data_ptr<scalar_t>() + int64_t(d) * Hn, D * Hn, res, keep, opt,
                            zero_state);
    }
  });
  return res;
}

// Backward of one layer. saved = what layer_forward returned after (out, h_n, c_n).
// Returns dx (empty unless need_dx), dh0, dc0 (empty unless LSTM), then per direction
// (dw_ih, dw_hh, db_ih, db_hh) with empty biases when the layer has none.
std::vector<at::Tensor> layer_backward(int64_t mode, const at::Tensor& x_in,
                                       const std::vector<at::Tensor>& w_in,
                                       const at::Tensor& lengths_in,
                                       const std::vector<at::Tensor>& saved,
                                       const at::Tensor& dout_in, const at::Tensor& dhT,
                                       const at::Tensor& dcT, bool need_dx) {
  rk_checks::layer_backward(mode, x_in, w_in, lengths_in, saved, dout_in, dhT, dcT);
  rk_common::init_threads();
  const at::Tensor x = x_in.contiguous(), lengths = lengths_in.contiguous();
  const std::vector<at::Tensor> w = contiguous_all(w_in);
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const int D = int(w.size() / 4), Hn = w[1].size(1);
  auto opt = x.options();
  at::Tensor dout = dout_in;  // (a loss like out.sum() gives an expanded, stride-0 gradient)
  if (!dout.is_contiguous()) dout = pooled_empty(dout_in.sizes(), opt).copy_(dout_in);
  at::Tensor dh = dhT.clone(at::MemoryFormat::Contiguous);
  at::Tensor dc = mode == LSTM ? dcT.clone(at::MemoryFormat::Contiguous) : at::empty({0}, opt);
  at::Tensor dx = need_dx ? pooled_empty({Tn, Bn, In}, opt) : at::empty({0}, opt);
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{dx, dh, dc};
  const int64_t G = gate_count(mode) * Hn;
  BlasThreads threads(3 * int64_t(Tn) * Bn * G * (In + Hn) * D, tuned.serial_layer_macs);
  const int k = saved_per_dir(mode);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_backward", [&] {
    for (int d = 0; d < D; ++d) {
      const bool has_bias = w[4 * d + 2].numel() > 0;
      at::Tensor dw_ih = at::empty_like(w[4 * d]), dw_hh = at::empty_like(w[4 * d + 1]);
      at::Tensor db_ih = has_bias ? at::empty_like(w[4 * d + 2]) : at::empty({0}, opt);
      at::Tensor db_hh = has_bias ? at::empty_like(w[4 * d + 3]) : at::empty({0}, opt);
      scalar_t* c = mode == LSTM ? dc.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn : nullptr;
      backward_dir<scalar_t>(
          mode, Tn, Bn, In, Hn, x.data_ptr<scalar_t>(), dir_weights<scalar_t>(w, d), len, d == 1,
          saved.data() + d * k, dout.data_ptr<scalar_t>() + int64_t(d) * Hn, D * Hn,
          dh.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn, c,
          need_dx ? dx.data_ptr<scalar_t>() : nullptr, d > 0, dw_ih.data_ptr<scalar_t>(),
          dw_hh.data_ptr<scalar_t>(), has_bias ? db_ih.data_ptr<scalar_t>() : nullptr,
          has_bias ? db_hh.data_ptr<scalar_t>() : nullptr, opt);
      res.insert(res.end(), {dw_ih, dw_hh, db_ih, db_hh});
    }
  });
  return res;
}

}  // namespace

namespace rk_layers {

// layer_forward for the other kernel files (decoder_kernels.cpp): one layer's forward, checked.
std::vector<at::Tensor> forward(int64_t mode, const at::Tensor& x, const at::Tensor& h0,
                                const at::Tensor& c0, const std::vector<at::Tensor>& w) {
  return layer_forward(mode, x, h0, c0, w, at::empty({0}, at::kLong), false);
}

}  // namespace rk_layers

namespace rk_bind {

// The layer kernels' entry points, on the engine's one module (bindings.cpp).
void layer_kernels(pybind11::module_& m) {
  m.def("layer_forward", &layer_forward, "forward of one layer, all directions",
        py::call_guard<py::gil_scoped_release>());
  m.def("layer_backward", &layer_backward, "BPTT backward of one layer, all directions",
        py::call_guard<py::gil_scoped_release>());
  m.def("packed_product", &packed_product, "the packed step product alone, for the tests",
        py::arg("a"), py::arg("m"), py::arg("c"), py::arg("bias"), py::arg("m_nk"),
        py::arg("n0"));
  m.def("nt_product", &nt_product, "the weight-layout step product alone, for the tests",
        py::arg("a"), py::arg("w"), py::arg("c"));
  m.def("pack_width", [](bool f64) {
          return f64 ? kernels<double>().pack_width : kernels<float>().pack_width;
        }, "columns per panel of the packed step product (float32, or float64)");
  m.def("has_onednn", [] { return onednn::ops() != nullptr; },
        "whether libtorch's oneDNN matrix products are available");
}

}  // namespace rk_bind
