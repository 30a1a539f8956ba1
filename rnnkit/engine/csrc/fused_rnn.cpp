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

#include "engine_common.h"
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
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

enum Mode : int64_t { RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3 };

using rk_common::BlasThreads;
using rk_common::gemm;


// One step of the forward elementwise pass; pointers already at step t.
template <typename T>
struct FwdStep {
  int64_t mode;
  int B, H, G, ldo, t;
  const int64_t* len;  // (B) or null
  T* a;                // (B, G) pre-activations; RNN/LSTM: activations written back
  const T* gh;         // GRU: (B, G) h W_hh^T; RNN/LSTM: the same to add to a, or null
  const T* b_hh;       // GRU: (G), zeros when the layer has no bias
  T* h;                // (B, H) state
  T* c;                // (B, H) LSTM cell state
  T* out;              // (B, ldo) output rows of this direction
  T* act;              // GRU keep: (B, 4H) r, z, n, hn
  T* cprev;            // LSTM keep: (B, H)
  T* tanhc;            // LSTM keep: (B, H)
};

// One step of the backward elementwise pass; pointers already at step t.
template <typename T>
struct BwdStep {
  int64_t mode;
  int B, H, G, ldo, aw, t;
  const int64_t* len;
  const T* act;    // (B, aw) saved activations
  const T* hprev;  // (B, H)
  const T* cprev;  // LSTM
  const T* tanhc;  // LSTM
  const T* dout;   // (B, ldo)
  T* dh;           // (B, H) carried dL/dh
  T* dc;           // LSTM (B, H) carried dL/dc
  T* dgx;          // (B, G) gradient of the x-side pre-activations
  T* dgh;          // GRU (B, G) of the h-side ones (= dgx for RNN/LSTM)
};

#define RK_INLINE inline __attribute__((always_inline))

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
namespace isa_avx512 {
#include "fused_rnn_rows.h"
}
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2")
namespace isa_avx2 {
#include "fused_rnn_rows.h"
}
#pragma GCC pop_options
namespace isa_base {
#include "fused_rnn_rows.h"
}

template <typename T>
struct Kernels {
  void (*fwd_keep)(const FwdStep<T>&);
  void (*fwd_nokeep)(const FwdStep<T>&);
  void (*bwd)(const BwdStep<T>&);
  void (*mm)(int, int, int, const T*, int, const T*, int, T*, int, bool);
  void (*transpose)(const T*, int, int, T*);
};

#define RK_TABLE(NS)                                                                     \
  Kernels<float>{NS::fwd_keep_f, NS::fwd_nokeep_f, NS::bwd_f, NS::mm_f,           \
                 NS::transpose_f},                                                        \
      Kernels<double> {                                                                  \
    NS::fwd_keep_d, NS::fwd_nokeep_d, NS::bwd_d, NS::mm_d, NS::transpose_d       \
  }

struct Dispatch {
  Kernels<float> f;
  Kernels<double> d;
  const char* isa;
};

Dispatch pick_isa() {
  __builtin_cpu_init();
  const char* force = std::getenv("RNNKIT_ISA");  // "avx512" | "avx2" | "base", for testing
  const std::string want = force ? force : "";
  if ((want.empty() || want == "avx512") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return Dispatch{RK_TABLE(isa_avx512), "avx512"};
  if ((want.empty() || want == "avx512" || want == "avx2") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    return Dispatch{RK_TABLE(isa_avx2), "avx2"};
  return Dispatch{RK_TABLE(isa_base), "base"};
}

const Dispatch& isa() {
  static const Dispatch d = pick_isa();
  return d;
}
template <typename T> const Kernels<T>& kernels();
template <> const Kernels<float>& kernels<float>() { return isa().f; }
template <> const Kernels<double>& kernels<double>() { return isa().d; }

// Per-step GEMMs: below this many multiply-adds one thread is faster than waking a team (each
// step is a fork-join). Above it, on an idle 2-core machine, threaded steps win: LSTM training
// at (B, T, H) = (64, 100, 512) went from 0.72x to 0.91x torch.nn. On a machine shared with
// other work a late thread stalls every step, so busy machines favour a higher threshold.
constexpr int64_t kSerialStepMacs = int64_t(1) << 24;
// A whole layer call below this many multiply-adds runs every BLAS call on one thread: on a busy
// machine, waking a thread team costs more than it saves, and its spinning steals the core.
constexpr int64_t kSerialLayerMacs = int64_t(1) << 24;
// Register-blocked step GEMMs of at least this many multiply-adds split their columns over
// torch's threads (settable from Python, `set_parallel_step_macs`, for tests and tuning).
int64_t kParallelStepMacs = int64_t(1) << 19;
// Batches up to this size use the register-blocked step GEMM instead of BLAS (settable from
// Python, `set_small_batch`, so tests can run both paths at small sizes).
int kSmallBatch = 16;

// oneDNN matrix products, reached through the mkldnn operators libtorch registers (the library
// torch.nn's own LSTM runs on). Where MKL's SGEMM does not pick its fastest kernels (AMD Zen
// here), oneDNN's are much faster: (64 x 512) x (512 x 2048) ran at 204 GFLOP/s against MKL's
// 127, and (6400 x 512) x (512 x 2048) at 168 against 125. float32 only. The operators take
// the weight once reordered into oneDNN's blocked layout, so a layer call reorders each weight
// once and reuses it at every step.
namespace onednn {

struct Ops {
  c10::OperatorHandle linear, linear_add, reorder;
};

const Ops* ops() {
  static const std::optional<Ops> found = []() -> std::optional<Ops> {
    auto& d = c10::Dispatcher::singleton();
    auto linear = d.findSchema({"mkldnn::_linear_pointwise", ""});
    auto linear_add = d.findSchema({"mkldnn::_linear_pointwise", "binary"});
    auto reorder = d.findSchema({"mkldnn::_reorder_linear_weight", ""});
    if (!at::hasMKLDNN() || !linear || !linear_add || !reorder) return std::nullopt;
    return Ops{*linear, *linear_add, *reorder};
  }();
  return found ? &*found : nullptr;
}

// 0: never, 1: float32 products large enough to gain (default), 2: every float32 product (tests).
int policy = 1;

// Whether a float32 product with `rows` rows per call, in a layer call of `layer_macs`
// multiply-adds, goes to oneDNN. Small products stay on BLAS / the blocked kernel, where
// oneDNN's per-call cost (~5 us) would dominate.
template <typename T>
bool wanted(int64_t rows, int64_t layer_macs) {
  if (!std::is_same_v<T, float> || policy == 0 || !ops()) return false;
  return policy == 2 || (rows > kSmallBatch && layer_macs >= kSerialLayerMacs);
}

// W (N, K) row-major, reordered for products with about `rows` rows.
at::Tensor reorder(const at::Tensor& w, int64_t rows) {
  torch::jit::Stack stack{w.contiguous(), c10::IValue(rows)};
  ops()->reorder.callBoxed(stack);
  return stack[0].toTensor();
}

// x (M, K) W^T (+ bias (N)) (+ add (M, N)), as a new (M, N) tensor; wp from `reorder`.
at::Tensor linear(const at::Tensor& x, const at::Tensor& wp, const at::Tensor& bias,
                  const at::Tensor& add) {
  const c10::IValue b = bias.defined() ? c10::IValue(bias) : c10::IValue();
  torch::jit::Stack stack;
  if (add.defined()) {
    stack = {x, add, wp, b, c10::IValue(std::string("add"))};
    ops()->linear_add.callBoxed(stack);
  } else {
    stack = {x, wp, b, c10::IValue(std::string("none")),
             c10::IValue(c10::List<std::optional<at::Scalar>>()), c10::IValue()};
    ops()->linear.callBoxed(stack);
  }
  return stack[0].toTensor();
}

}  // namespace onednn

// The per-step GEMM c (B, N) (+)= a (B, K) M, for a fixed matrix M used at every step, given as
// either mt = M^T (N, K) row-major (`transposed`) or M (K, N) row-major. Batches up to
// kSmallBatch use the register-blocked kernel (which needs M (K, N)); larger float batches use
// oneDNN when the caller passes M^T as a tensor (`onednn_nk`, reordered once per layer call), or
// MKL's packed GEMM, packing M once per layer call instead of once per step; else plain BLAS.
template <typename T>
struct StepGemm {
  int B, N, K;
  const T* m_kn = nullptr;  // M (K, N), for the small kernel and plain BLAS
  const T* m_nk = nullptr;  // or M^T (N, K): then plain BLAS only (calls of one or two steps)
  at::Tensor packed;        // MKL-packed M, when used
  at::Tensor dnn;           // oneDNN-reordered M^T, when used
  at::TensorOptions opt;
  StepGemm(int B_, int N_, int K_, const T* m_kn_, const at::TensorOptions& opt_,
           const T* m_nk_ = nullptr, const at::Tensor& onednn_nk = at::Tensor())
      : B(B_), N(N_), K(K_), m_kn(m_kn_), m_nk(m_nk_), opt(opt_) {
    if (onednn_nk.defined()) {
      dnn = onednn::reorder(onednn_nk, B);
      return;
    }
    if (m_nk) return;
    if constexpr (std::is_same_v<T, float>) {
      if (B > kSmallBatch && sgemm_pack_get_size_ && sgemm_pack_ && sgemm_compute_) {
        // Column-major view: c^T (N, B) = M^T (N, K) a^T (K, B); M (K, N) row-major is
        // M^T in column-major storage with ld = N, so op = 'N' on the (N x K) operand "A".
        const char id = 'A', tr = 'N';
        const float one = 1.0f;
        const size_t bytes = sgemm_pack_get_size_(&id, &N, &B, &K);
        packed = at::empty({int64_t((bytes + sizeof(float) - 1) / sizeof(float))},
                           opt.dtype(at::kFloat));
        sgemm_pack_(&id, &tr, &N, &B, &K, &one, m_kn, &N, packed.data_ptr<float>());
      }
    }
  }
  // The register-blocked kernel; products of at least kParallelStepMacs split their columns
  // over torch's threads.
  void small(const Kernels<T>& k, const T* a, T* c, bool accumulate) const {
    rk_common::split_columns(N, int64_t(B) * N * K, kParallelStepMacs, [&](int n0, int n1) {
      k.mm(B, K, n1 - n0, a, K, m_kn + n0, N, c + n0, N, accumulate);
    });
  }
  // oneDNN only: a (B, K) M as a new (B, N) tensor.
  at::Tensor product(const T* a) const {
    const at::Tensor a_t = at::from_blob(const_cast<T*>(a), {B, K}, opt);
    return onednn::linear(a_t, dnn, at::Tensor(), at::Tensor());
  }
  void run(const Kernels<T>& k, const T* a, T* c, bool accumulate) const {
    if (dnn.defined()) {  // the product, then added here (a fused post-op add was slower)
      const at::Tensor y = product(a);
      const T* __restrict src = y.data_ptr<T>();
      T* __restrict dst = c;
      if (!accumulate) {
        std::memcpy(dst, src, sizeof(T) * B * N);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < int64_t(B) * N; ++j) dst[j] += src[j];
      }
      return;
    }
    if (m_nk) {
      gemm(false, true, B, N, K, a, K, m_nk, K, accumulate ? T(1) : T(0), c, N);
      return;
    }
    if (B <= kSmallBatch) {
      small(k, a, c, accumulate);
      return;
    }
    if constexpr (std::is_same_v<T, float>) {
      if (packed.defined()) {
        const char ta = 'P', tb = 'N';
        const float beta = accumulate ? 1.0f : 0.0f;
        sgemm_compute_(&ta, &tb, &N, &B, &K, packed.data_ptr<float>(), &N, a, &K, &beta, c,
                       &N);
        return;
      }
    }
    gemm(false, false, B, N, K, a, K, m_kn, N, accumulate ? T(1) : T(0), c, N);
  }
};

// A step's elementwise pass over rows [b0, b1) of the batch: the same step with every
// per-row pointer moved to row b0.
template <typename T>
FwdStep<T> rows_from(FwdStep<T> s, int b0, int b1) {
  const int64_t H = s.H, G = s.G;
  s.B = b1 - b0;
  if (s.len) s.len += b0;
  s.a += b0 * G;
  if (s.gh) s.gh += b0 * G;
  s.h += b0 * H;
  if (s.c) s.c += b0 * H;
  s.out += int64_t(b0) * s.ldo;
  if (s.act) s.act += b0 * 4 * H;
  if (s.cprev) s.cprev += b0 * H;
  if (s.tanhc) s.tanhc += b0 * H;
  return s;
}

template <typename T>
BwdStep<T> rows_from(BwdStep<T> s, int b0, int b1) {
  const int64_t H = s.H, G = s.G;
  s.B = b1 - b0;
  if (s.len) s.len += b0;
  s.act += b0 * s.aw;
  s.hprev += b0 * H;
  if (s.cprev) s.cprev += b0 * H;
  if (s.tanhc) s.tanhc += b0 * H;
  s.dout += int64_t(b0) * s.ldo;
  s.dh += b0 * H;
  if (s.dc) s.dc += b0 * H;
  s.dgx += b0 * G;
  s.dgh += b0 * G;
  return s;
}

// Below this many gate elements per step the elementwise pass runs on the calling thread;
// above, its batch rows are split over torch's threads (one fork-join per step).
constexpr int64_t kParallelRowElems = int64_t(1) << 14;

// Runs a step's elementwise pass, split over threads when the step is large enough.
template <typename Step>
void run_rows(void (*rows)(const Step&), const Step& s) {
  rk_common::split_rows(s.B, int64_t(s.B) * s.G, kParallelRowElems,
                        [&](int b0, int b1, int) { rows(rows_from(s, b0, b1)); });
}

template <typename T>
struct Dir {
  at::Tensor w_ih_t, w_hh_t, b_ih_t, b_hh_t;  // the same, as tensors (biases may be empty)
  const T* w_ih;   // (G, I)
  const T* w_hh;   // (G, H)
  const T* b_ih;   // (G) or null
  const T* b_hh;   // (G) or null
};

inline int gate_count(int64_t mode) { return mode == LSTM ? 4 : (mode == GRU ? 3 : 1); }

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
  const int64_t layer_macs = TB * G * (In + Hn);
  const bool dnn_big = onednn::wanted<T>(TB, layer_macs);
  const bool dnn_step = onednn::wanted<T>(Bn, layer_macs) && Tn > 2;
  const bool fold_hh = mode != GRU;
  // xp = x W_ih^T + b_ih (+ b_hh): one GEMM over all T*B rows.  (T, B, G)
  at::Tensor xp_t;
  if (dnn_big) {
    at::Tensor bias;
    if (w.b_ih) bias = fold_hh ? w.b_ih_t + w.b_hh_t : w.b_ih_t;
    const at::Tensor x2 = at::from_blob(const_cast<T*>(x), {TB, In}, opt);
    xp_t = onednn::linear(x2, w.w_ih_t, bias, at::Tensor())
               .view({Tn, Bn, G});
  } else {  // bias rows first, then the GEMM with beta = 1
    xp_t = at::empty({Tn, Bn, G}, opt);
    T* xp = xp_t.data_ptr<T>();
    for (int64_t r = 0; r < TB; ++r) {
      T* __restrict row = xp + r * G;
      if (!w.b_ih) {
        std::memset(row, 0, sizeof(T) * G);
      } else if (fold_hh) {
        const T* __restrict bi = w.b_ih;
        const T* __restrict bh = w.b_hh;
#pragma omp simd
        for (int j = 0; j < G; ++j) row[j] = bi[j] + bh[j];
      } else {
        std::memcpy(row, w.b_ih, sizeof(T) * G);
      }
    }
    gemm(false, true, int(TB), G, In, x, In, w.w_ih, In, T(1), xp, G);
  }
  T* xp = xp_t.data_ptr<T>();

  // Pre-transposed recurrent weights W_hh^T (H, G): the per-step GEMM reads them row by row.
  // A call of one or two steps skips the transpose (it would cost more than it saves), and so
  // does oneDNN, which takes W_hh (G, H) as it is.
  const Kernels<T>& k = kernels<T>();
  const bool few_steps = Tn <= 2;
  const bool transpose = !few_steps && !dnn_step;
  at::Tensor wt_t = transpose ? at::empty({Hn, G}, opt) : at::Tensor();
  T* wt = transpose ? wt_t.data_ptr<T>() : nullptr;
  if (transpose) k.transpose(w.w_hh, G, Hn, wt);

  at::Tensor zero_bias_t = w.b_hh ? at::Tensor() : at::zeros({G}, opt);  // GRU without bias
  FwdStep<T> s{};
  s.mode = mode; s.B = Bn; s.H = Hn; s.G = G; s.ldo = ldo; s.len = len;
  s.b_hh = w.b_hh ? w.b_hh : zero_bias_t.data_ptr<T>();
  s.h = h; s.c = c;
  at::Tensor act_t, hprev_t, cprev_t, tanhc_t, gh_t;
  if (keep) {
    hprev_t = at::empty({Tn, Bn, Hn}, opt);
    if (mode == GRU) act_t = at::empty({Tn, Bn, 4 * Hn}, opt);
    if (mode == LSTM) {
      cprev_t = at::empty({Tn, Bn, Hn}, opt);
      tanhc_t = at::empty({Tn, Bn, Hn}, opt);
    }
  }
  if (mode == GRU) {
    gh_t = at::empty({Bn, G}, opt);
    s.gh = gh_t.data_ptr<T>();
  }
  auto rows = keep ? k.fwd_keep : k.fwd_nokeep;
  BlasThreads threads(int64_t(Bn) * G * Hn, kSerialStepMacs);
  const StepGemm<T> step_gemm(Bn, G, Hn, wt, opt, few_steps ? w.w_hh : nullptr,  // h W_hh^T
                              dnn_step ? w.w_hh_t : at::Tensor());
  for (int step = 0; step < Tn; ++step) {
    const int t = reverse ? Tn - 1 - step : step;
    const int64_t bh = int64_t(t) * Bn * Hn;
    s.t = t;
    s.a = xp + int64_t(t) * Bn * G;
    s.out = out + int64_t(t) * Bn * ldo;
    if (keep) {
      std::memcpy(hprev_t.data_ptr<T>() + bh, h, sizeof(T) * Bn * Hn);
      if (mode == GRU) s.act = act_t.data_ptr<T>() + int64_t(t) * Bn * 4 * Hn;
      if (mode == LSTM) {
        s.cprev = cprev_t.data_ptr<T>() + bh;
        s.tanhc = tanhc_t.data_ptr<T>() + bh;
      }
    }
    // GRU: gh = h W_hh^T; RNN/LSTM: a += h W_hh^T (oneDNN: gh = h W_hh^T, added by the rows)
    at::Tensor product;
    if (step_gemm.dnn.defined()) {
      product = step_gemm.product(h);
      s.gh = product.data_ptr<T>();
    } else {
      T* dst = mode == GRU ? const_cast<T*>(s.gh) : s.a;
      step_gemm.run(k, h, dst, mode != GRU);
    }
    run_rows(rows, s);
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

template <typename T>
void backward_dir(int64_t mode, int Tn, int Bn, int In, int Hn, const T* x, Dir<T> w,
                  const int64_t* len, bool reverse, const at::Tensor* saved, const T* dout,
                  int ldo, T* dh, T* dc, T* dx, bool dx_accumulate, T* dw_ih, T* dw_hh,
                  T* db_ih, T* db_hh, const at::TensorOptions& opt) {
  const int G = gate_count(mode) * Hn;
  const int64_t TB = int64_t(Tn) * Bn;
  at::Tensor dgx_t = at::empty({Tn, Bn, G}, opt);
  at::Tensor dgh_t = mode == GRU ? at::empty({Tn, Bn, G}, opt) : dgx_t;
  T* dgx = dgx_t.data_ptr<T>();
  T* dgh = dgh_t.data_ptr<T>();
  const T* hprev = saved[1].data_ptr<T>();
  BwdStep<T> s{};
  s.mode = mode; s.B = Bn; s.H = Hn; s.G = G; s.ldo = ldo; s.len = len;
  s.aw = mode == GRU ? 4 * Hn : G;
  s.dh = dh; s.dc = dc;
  const Kernels<T>& k = kernels<T>();
  const int64_t layer_macs = TB * G * (In + Hn);
  {
    BlasThreads threads(int64_t(Bn) * G * Hn, kSerialStepMacs);
    const bool dnn_step = onednn::wanted<T>(Bn, layer_macs);
    const StepGemm<T> step_gemm(Bn, Hn, G, w.w_hh, opt, nullptr,  // (B, G) x W_hh (G, H)
                                dnn_step ? w.w_hh_t.t().contiguous() : at::Tensor());
    for (int step = 0; step < Tn; ++step) {
      const int t = reverse ? step : Tn - 1 - step;  // the forward's steps, last first
      const int64_t r = int64_t(t) * Bn;
      s.t = t;
      s.act = saved[0].data_ptr<T>() + r * s.aw;
      s.hprev = hprev + r * Hn;
      if (mode == LSTM) {
        s.cprev = saved[2].data_ptr<T>() + r * Hn;
        s.tanhc = saved[3].data_ptr<T>() + r * Hn;
      }
      s.dout = dout + r * ldo;
      s.dgx = dgx + r * G;
      s.dgh = dgh + r * G;
      run_rows(k.bwd, s);
      // dh_prev += dG_h[t] W_hh: through a = ... + W_hh h_prev.  (B, G) x (G, H)
      step_gemm.run(k, s.dgh, dh, true);
    }
  }
  // Weight gradients, summed over all steps: one GEMM each over the T*B rows.
  // Weight gradients stay on BLAS: its transposed-A product reads dG in place, where oneDNN
  // first copies a transposed operand (measured slower in the 2x512 LSTM LM).
  gemm(true, false, G, In, int(TB), dgx, G, x, In, T(0), dw_ih, In);      // dW_ih = dGx^T x
  gemm(true, false, G, Hn, int(TB), dgh, G, hprev, Hn, T(0), dw_hh, Hn);  // dW_hh = dGh^T h
  if (db_ih) {  // ATen's column sums: threaded, and cascaded (more accurate than a running sum)
    at::Tensor db_ih_t = at::from_blob(db_ih, {G}, opt);
    at::sum_out(db_ih_t, at::from_blob(dgx, {TB, G}, opt), {0});                // db_ih = sum dGx
    if (dgh == dgx) {
      std::memcpy(db_hh, db_ih, sizeof(T) * G);                                 // the same sum
    } else {
      at::Tensor db_hh_t = at::from_blob(db_hh, {G}, opt);
      at::sum_out(db_hh_t, at::from_blob(dgh, {TB, G}, opt), {0});              // db_hh = sum dGh
    }
  }
  if (dx) {  // dx (+)= dGx W_ih: through xp = x W_ih^T
    if (onednn::wanted<T>(TB, layer_macs)) {
      const at::Tensor dg2 = at::from_blob(dgx, {TB, G}, opt);
      const at::Tensor dx2 = at::from_blob(dx, {TB, In}, opt);
      const at::Tensor y = onednn::linear(dg2, w.w_ih_t.t(), at::Tensor(),
                                          dx_accumulate ? dx2 : at::Tensor());
      std::memcpy(dx, y.data_ptr<T>(), sizeof(T) * TB * In);
    } else {
      gemm(false, false, int(TB), In, G, dgx, G, w.w_ih, In,
           dx_accumulate ? T(1) : T(0), dx, In);
    }
  }
}

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
  rk_common::init_threads();
  const at::Tensor x = x_in.contiguous(), lengths = lengths_in.contiguous();
  const std::vector<at::Tensor> w = contiguous_all(w_in);
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const int D = int(w.size() / 4), Hn = h0.size(2);
  auto opt = x.options();
  at::Tensor out = at::empty({Tn, Bn, D * Hn}, opt);
  at::Tensor hT = h0.clone(at::MemoryFormat::Contiguous);
  at::Tensor cT = mode == LSTM ? c0.clone(at::MemoryFormat::Contiguous) : at::Tensor();
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{out, hT, mode == LSTM ? cT : at::empty({0}, opt)};
  const int64_t G = gate_count(mode) * Hn;
  BlasThreads threads(int64_t(Tn) * Bn * G * (In + Hn) * D, kSerialLayerMacs);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_forward", [&] {
    for (int d = 0; d < D; ++d) {
      scalar_t* c = mode == LSTM ? cT.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn : nullptr;
      forward_dir<scalar_t>(mode, Tn, Bn, In, Hn, x.data_ptr<scalar_t>(), dir_weights<scalar_t>(w, d),
                            len, d == 1, hT.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn, c,
                            out.data_ptr<scalar_t>() + int64_t(d) * Hn, D * Hn, res, keep, opt);
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
  rk_common::init_threads();
  const at::Tensor x = x_in.contiguous(), lengths = lengths_in.contiguous();
  const std::vector<at::Tensor> w = contiguous_all(w_in);
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const int D = int(w.size() / 4), Hn = w[1].size(1);
  auto opt = x.options();
  at::Tensor dout = dout_in.contiguous();
  at::Tensor dh = dhT.clone(at::MemoryFormat::Contiguous);
  at::Tensor dc = mode == LSTM ? dcT.clone(at::MemoryFormat::Contiguous) : at::empty({0}, opt);
  at::Tensor dx = need_dx ? at::empty({Tn, Bn, In}, opt) : at::empty({0}, opt);
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{dx, dh, dc};
  const int64_t G = gate_count(mode) * Hn;
  BlasThreads threads(3 * int64_t(Tn) * Bn * G * (In + Hn) * D, kSerialLayerMacs);
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit fused CPU engine: RNN/LSTM/GRU layer forward and hand-written BPTT.";
  m.def("layer_forward", &layer_forward, "forward of one layer, all directions",
        py::call_guard<py::gil_scoped_release>());
  m.def("layer_backward", &layer_backward, "BPTT backward of one layer, all directions",
        py::call_guard<py::gil_scoped_release>());
  m.def("isa", [] { return std::string(isa().isa); }, "the instruction set the kernels use");
  m.def("set_onednn", [](int p) { int old = onednn::policy; onednn::policy = p; return old; },
        "oneDNN for float32 products: 0 never, 1 when large enough (default), 2 always; "
        "returns the old value");
  m.def("has_onednn", [] { return onednn::ops() != nullptr; },
        "whether libtorch's oneDNN matrix products are available");
  m.def("set_parallel_step_macs",
        [](int64_t n) { int64_t old = kParallelStepMacs; kParallelStepMacs = n; return old; },
        "smallest blocked step GEMM split over threads, in multiply-adds; returns the old value");
  m.def("set_small_batch", [](int b) { int old = kSmallBatch; kSmallBatch = b; return old; },
        "largest batch for the register-blocked step GEMM (above: BLAS); returns the old value");
}
