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

#include "checks.h"
#include "engine_common.h"
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
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
using rk_common::pooled_empty;
using rk_common::gemm;


// One step of the forward elementwise pass; pointers already at step t.
template <typename T>
struct FwdStep {
  int64_t mode;
  int B, H, G, ldo, t;
  int n;               // hidden units this pass covers (H, or one thread's slice)
  const int64_t* len;  // (B) or null
  T* a;                // (B, G) pre-activations; RNN/LSTM: activations written back
  const T* gh;         // GRU: (B, G) h W_hh^T; RNN/LSTM: the same to add to a, or null
  int ghs, ldgh;       // gh's gate and row strides (H and G, or a thread's packed slice)
  const T* b_hh;       // GRU: (G), zeros when the layer has no bias
  const T* xb;         // (G) x-side bias to add to a first (b_ih, + b_hh for RNN/LSTM), or null
  const T* hin;        // (B, H) state before the step (h itself, or the previous buffer)
  T* h;                // (B, H) state after the step
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
  int n;           // hidden units this pass covers (H, or one thread's slice)
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
#define RK_VEC_BYTES 64
#define RK_ACC_VECS 16
#include "fused_rnn_rows.h"
#undef RK_VEC_BYTES
#undef RK_ACC_VECS
}
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2")
namespace isa_avx2 {
#define RK_VEC_BYTES 32
#define RK_ACC_VECS 8
#include "fused_rnn_rows.h"
#undef RK_VEC_BYTES
#undef RK_ACC_VECS
}
#pragma GCC pop_options
namespace isa_base {
#define RK_VEC_BYTES 16
#define RK_ACC_VECS 8
#include "fused_rnn_rows.h"
#undef RK_VEC_BYTES
#undef RK_ACC_VECS
}

template <typename T>
struct Kernels {
  void (*fwd_keep)(const FwdStep<T>&);
  void (*fwd_nokeep)(const FwdStep<T>&);
  void (*bwd)(const BwdStep<T>&);
  void (*mm)(int, int, int, const T*, int, const T*, int, T*, int, bool);
  void (*transpose)(const T*, int, int, T*, int);
  void (*mm_bias)(int, int, int, const T*, int, const T*, int, T*, int, const T*);
};

#define RK_TABLE(NS)                                                                     \
  Kernels<float>{NS::fwd_keep_f, NS::fwd_nokeep_f, NS::bwd_f, NS::mm_f,           \
                 NS::transpose_f, NS::mm_bias_f},                                      \
      Kernels<double> {                                                                  \
    NS::fwd_keep_d, NS::fwd_nokeep_d, NS::bwd_d, NS::mm_d, NS::transpose_d,      \
        NS::mm_bias_d                                                                    \
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
// Rows of dG per chunk of the pipelined backward's parameter gradients (backward_dir; settable
// from Python, `set_pipeline_rows`; 0 turns the pipeline off).
int64_t kPipelineRows = 256;
// Rows of the input projections computed at a time in inference (forward_dir; settable from
// Python, `set_xp_chunk_rows`, so tests reach the chunks at small sizes).
int64_t kXpChunkRows = 1024;
// Register-blocked step GEMMs of at least this many multiply-adds split their columns over
// torch's threads (settable from Python, `set_parallel_step_macs`, for tests and tuning).
int64_t kParallelStepMacs = int64_t(1) << 19;
// Batches up to this size use the register-blocked step GEMM instead of BLAS (settable from
// Python, `set_small_batch`, so tests can run both paths at small sizes).
int kSmallBatch = 16;
// Batches up to this size, with at least kTeamMacs multiply-adds per step product, run their
// step loop on a thread team (rk_common::run_team) when torch has more than one thread.
// Settable from Python (`set_team`), for tests and tuning.
int kTeamBatch = 16;
int64_t kTeamMacs = int64_t(1) << 14;
// Larger batches run on a team when their step products are at most this many multiply-adds
// (measured at B = 32 to 128: the team's one region and fused row pass beat a fork-join per
// product and per row pass up to the (64, 256) GRU's 12.6M, by up to 2x at 1M; from 16M on,
// BLAS's product ran 5-15% faster than the team's register-blocked one).
int64_t kTeamLargeMacs = 13000000;

// The team size for a step loop of (B, G) x (H) products; 1 = the plain loop.
// A plain RNN has a quarter of an LSTM's product per step, too little to pay for the barrier
// at small batches except for one or two rows of 128 units or more (measured: B = 1 gains 10%
// at H = 128 and 15% at H = 256; B >= 4 at H = 128 loses up to 20%).
template <typename T>
int team_threads(int B, int G, int H) {
  const int64_t macs = int64_t(B) * G * H;
  if (kTeamBatch <= 0 || macs < kTeamMacs) return 1;
  if (B > kTeamBatch) {
    if (kTeamMacs > 0 && macs > kTeamLargeMacs) return 1;
    return rk_common::team_size(H, 64 / int(sizeof(T)));
  }
  if (kTeamMacs > 0 && G == H && (B > 2 || H < 128)) return 1;
  return rk_common::team_size(H, 64 / int(sizeof(T)));
}

// A step loop splits by batch rows (forward_split, the split branch of backward_dir) when every
// thread gets at least kSplitRows rows and the step product is at most kTeamLargeMacs
// multiply-adds (with at least kTeamMacs). Settable from Python (`set_split_rows`; 0: never).
int kSplitRows = 4;

// The thread count for a step loop split by batch rows; 1 = no split. Measured against the
// unit-sliced team and the one-thread loop: with 4 rows per thread or more the split ran
// 8-28% faster (LSTM, GRU, RNN at B = 8 to 64, H = 64 to 256, inference and training); with 2
// rows per thread it was up to 20% slower at H >= 128 (every thread reads all of W_hh).
template <typename T>
int split_threads(int B, int G, int H) {
  const int64_t macs = int64_t(B) * G * H;
  if (kSplitRows <= 0 || macs < kTeamMacs || macs > kTeamLargeMacs || at::in_parallel_region())
    return 1;
  return std::max(1, std::min({at::get_num_threads(), B / kSplitRows, 8}));
}

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

// 0: never, 1: float32 products large enough to gain, on CPUs other than Intel's (default),
// 2: every float32 product (tests).
int policy = 1;

// MKL runs its fastest SGEMM kernels on Intel CPUs only. There (a Xeon with AVX-512) MKL's
// products beat oneDNN's by 5-15% in every large layer call timed, from the (64, 100, 256)
// LSTM to the (64, 100, 512) GRU, training and inference; on AMD Zen oneDNN won by up to 60%.
bool mkl_preferred() {
  static const bool intel = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
  }();
  return intel;
}

// Whether a float32 product with `rows` rows per call, in a layer call of `layer_macs`
// multiply-adds, goes to oneDNN. Small products stay on BLAS / the blocked kernel, where
// oneDNN's per-call cost (~5 us) would dominate.
template <typename T>
bool wanted(int64_t rows, int64_t layer_macs) {
  if (!std::is_same_v<T, float> || policy == 0 || !ops()) return false;
  return policy == 2 ||
         (!mkl_preferred() && rows > kSmallBatch && layer_macs >= kSerialLayerMacs);
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
  if (s.gh) s.gh += int64_t(b0) * s.ldgh;
  s.hin += b0 * H;
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

// A step's elementwise pass over hidden units [u0, u0 + n) of every row: the same step with
// every per-unit pointer moved to unit u0 (gate and row strides unchanged).
template <typename T>
FwdStep<T> units_from(FwdStep<T> s, int u0, int n) {
  s.n = n;
  s.a += u0;
  if (s.gh) s.gh += u0;
  if (s.b_hh) s.b_hh += u0;
  if (s.xb) s.xb += u0;
  s.hin += u0;
  s.h += u0;
  if (s.c) s.c += u0;
  s.out += u0;
  if (s.act) s.act += u0;
  if (s.cprev) s.cprev += u0;
  if (s.tanhc) s.tanhc += u0;
  return s;
}

template <typename T>
BwdStep<T> units_from(BwdStep<T> s, int u0, int n) {
  s.n = n;
  s.act += u0;
  s.hprev += u0;
  if (s.cprev) s.cprev += u0;
  if (s.tanhc) s.tanhc += u0;
  s.dout += u0;
  s.dh += u0;
  if (s.dc) s.dc += u0;
  s.dgx += u0;
  s.dgh += u0;
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

// Moves a step's pointers to time t (step buffers (T, B, *) of the forward).
template <typename T>
void forward_at(FwdStep<T>& s, int t, T* xp, T* out, const at::Tensor& act_t,
                const at::Tensor& cprev_t, const at::Tensor& tanhc_t) {
  const int64_t bh = int64_t(t) * s.B * s.H;
  s.t = t;
  s.a = xp ? xp + int64_t(t) * s.B * s.G : nullptr;  // null: the caller sets it
  s.out = out + int64_t(t) * s.B * s.ldo;
  if (act_t.defined()) s.act = act_t.data_ptr<T>() + int64_t(t) * s.B * 4 * s.H;
  if (cprev_t.defined()) {
    s.cprev = cprev_t.data_ptr<T>() + bh;
    s.tanhc = tanhc_t.data_ptr<T>() + bh;
  }
}

// The step loop on one thread (products and row passes may each fork over threads).
template <typename T>
void forward_loop(const Kernels<T>& k, void (*rows)(const FwdStep<T>&), FwdStep<T> s, int Tn,
                  bool reverse, const std::function<T*(int)>& xp_at, const T* wt,
                  const T* w_hh_nk, const at::Tensor& dnn_nk,
                  T* hprev, const at::Tensor& act_t, const at::Tensor& cprev_t,
                  const at::Tensor& tanhc_t, const at::TensorOptions& opt) {
  const int Bn = s.B, G = s.G, Hn = s.H;
  const int64_t mode = s.mode;
  T* h = s.h;
  T* out = s.out;
  BlasThreads threads(int64_t(Bn) * G * Hn, kSerialStepMacs);
  const StepGemm<T> step_gemm(Bn, G, Hn, wt, opt, w_hh_nk, dnn_nk);  // h W_hh^T
  for (int step = 0; step < Tn; ++step) {
    const int t = reverse ? Tn - 1 - step : step;
    forward_at<T>(s, t, nullptr, out, act_t, cprev_t, tanhc_t);
    s.a = xp_at(t);
    if (hprev) std::memcpy(hprev + int64_t(t) * Bn * Hn, h, sizeof(T) * Bn * Hn);
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
}

// The step loop split by batch rows: thread p runs the whole loop for its own rows
// [b0, b1): their input projection x W_ih^T + b at each step (into xp when the backward keeps
// it, else into a small buffer of the thread's, still in cache when the step reads it), their
// product with all of W_hh^T, their row pass and their state, independent of the other
// threads, so that no step waits for another thread.
template <typename T>
void forward_split(int threads, const Kernels<T>& k, void (*rows)(const FwdStep<T>&),
                   FwdStep<T> s, int Tn, bool reverse, int In, const T* x, const T* wih_t,
                   const T* bias, T* xp, const T* wt, T* hprev, const at::Tensor& act_t,
                   const at::Tensor& cprev_t, const at::Tensor& tanhc_t,
                   const at::TensorOptions& opt) {
  const int Bn = s.B, G = s.G, Hn = s.H;
  const bool gru = s.mode == GRU;
  T* out = s.out;
  const int most = (Bn + threads - 1) / threads;  // rows of the largest slice
  const at::Tensor scratch_t = xp ? at::Tensor() : at::empty({threads, most, G}, opt);
  rk_common::run_team(threads, [&](int p, int nt, rk_common::SpinBarrier&) {
    const int b0 = int(int64_t(Bn) * p / nt), b1 = int(int64_t(Bn) * (p + 1) / nt), nb = b1 - b0;
    if (nb == 0) return;
    T* scratch = xp ? nullptr : scratch_t.data_ptr<T>() + int64_t(p) * most * G;
    FwdStep<T> st = s;
    for (int step = 0; step < Tn; ++step) {
      const int t = reverse ? Tn - 1 - step : step;
      forward_at(st, t, xp, out, act_t, cprev_t, tanhc_t);
      FwdStep<T> mine = rows_from(st, b0, b1);
      const int64_t r0 = int64_t(t) * Bn + b0;  // the first row of (T*B, *)
      mine.a = xp ? xp + r0 * G : scratch;
      mine.xb = nullptr;
      k.mm_bias(nb, In, G, x + r0 * In, In, wih_t, G, mine.a, G, bias);
      if (hprev) std::memcpy(hprev + r0 * Hn, mine.hin, sizeof(T) * nb * Hn);
      if (gru) {  // gh = h W_hh^T
        k.mm(nb, Hn, G, mine.hin, Hn, wt, G, const_cast<T*>(mine.gh), mine.ldgh, false);
      } else {    // a += h W_hh^T
        k.mm(nb, Hn, G, mine.hin, Hn, wt, G, mine.a, G, true);
      }
      rows(mine);
    }
  });
}

// The step loop on a team of threads, one region for all steps. Thread p owns a slice of n
// hidden units: it packs its rows of W_ih and W_hh, transposed, one contiguous (K, n) panel
// per gate; computes its columns of xp = x W_ih^T + b a few steps ahead, into xp when the
// backward keeps it (null xp: a ring of those few steps, which stays in cache and spares the
// page faults of a fresh (T, B, G) buffer); then per step its columns of h W_hh^T, the
// elementwise pass on its units, and the step's barrier. The state alternates between
// buffers (the saved hprev slots when the backward needs them) so that no thread overwrites
// the h another thread is still reading; the last step writes the layer's final state.
template <typename T>
void forward_team(int team, const Kernels<T>& k, void (*rows)(const FwdStep<T>&), FwdStep<T> s,
                  int Tn, bool reverse, int In, const T* x, const Dir<T>& w, const T* bias,
                  T* xp, T* hprev, const at::Tensor& act_t, const at::Tensor& cprev_t,
                  const at::Tensor& tanhc_t, const at::TensorOptions& opt) {
  const int Bn = s.B, G = s.G, Hn = s.H, gates = G / Hn;
  const int64_t BH = int64_t(Bn) * Hn;
  const bool gru = s.mode == GRU;
  T* h = s.h;
  T* out = s.out;
  // Work space: packed weights and GRU product scratch (each thread's part at an offset
  // proportional to its first unit), a copy of h per thread (a cache line apart), the xp ring,
  // the two state buffers.
  const int64_t local = (BH + 15) / 16 * 16 + 16;
  const int chunk = std::max(1, 64 / Bn);  // steps of xp computed at a time
  const int64_t ring_size = xp ? 0 : int64_t(chunk) * Bn * G;
  at::Tensor work_t = pooled_empty(
      {int64_t(Hn + In + Bn) * G + (hprev ? 0 : 2 * BH) + team * local + ring_size}, opt);
  T* packed_hh = work_t.data_ptr<T>();
  T* packed_ih = packed_hh + int64_t(Hn) * G;
  T* scratch = packed_ih + int64_t(In) * G;
  T* h_local = scratch + int64_t(Bn) * G;
  T* ring = h_local + team * local;
  T* buf = ring + ring_size;
  auto time_of = [&](int step) { return reverse ? Tn - 1 - step : step; };
  auto h_after = [&](int step) -> T* {  // where the state after `step` goes
    if (step == Tn - 1) return h;
    return hprev ? hprev + time_of(step + 1) * BH : buf + (step % 2) * BH;
  };
  if (hprev) std::memcpy(hprev + time_of(0) * BH, h, sizeof(T) * BH);
  rk_common::run_team(team, [&](int p, int threads, rk_common::SpinBarrier& barrier) {
    // team_size gives every thread at least one vector of units
    const rk_common::UnitSlice u = rk_common::unit_slice(Hn, p, threads, 64 / int(sizeof(T)));
    const int n = u.n, width = gates * n;
    T* wph = packed_hh + int64_t(Hn) * gates * u.u0;  // gate g: (H, n) at wph + g H n
    T* wpi = packed_ih + int64_t(In) * gates * u.u0;  // gate g: (I, n) at wpi + g I n
    T* gh = scratch + int64_t(Bn) * gates * u.u0;     // (B, gates * n)
    T* hl = h_local + p * local;                      // (B, H)
    for (int g = 0; g < gates; ++g) {
      const int64_t row = int64_t(g) * Hn + u.u0;  // first row of this gate's slice
      k.transpose(w.w_hh + row * Hn, n, Hn, wph + int64_t(g) * Hn * n, n);
      k.transpose(w.w_ih + row * In, n, In, wpi + int64_t(g) * In * n, n);
    }
    // xp, own columns, for the `count` steps from `first` on: bias + x W_ih^T. Run a few
    // steps ahead (about 64 rows at a time) so that the rows are still in cache when used.
    int chunk_t0 = 0;  // the first time index of the chunk of xp computed last
    auto project = [&](int first, int count) {
      chunk_t0 = std::min(time_of(first), time_of(first + count - 1));
      const int64_t r0 = int64_t(chunk_t0) * Bn;
      const int rn = count * Bn;
      for (int g = 0; g < gates; ++g) {
        const int64_t col = int64_t(g) * Hn + u.u0;
        k.mm_bias(rn, In, n, x + r0 * In, In, wpi + int64_t(g) * In * n, n,
                  (xp ? xp + r0 * G : ring) + col, G, bias ? bias + col : nullptr);
      }
    };
    FwdStep<T> st = s;
    for (int step = 0; step < Tn; ++step) {
      if (step % chunk == 0) project(step, std::min(chunk, Tn - step));
      forward_at(st, time_of(step), xp, out, act_t, cprev_t, tanhc_t);
      if (!xp) st.a = ring + int64_t(time_of(step) - chunk_t0) * Bn * G;
      st.hin = step == 0 ? h : h_after(step - 1);
      st.h = h_after(step);
      // The product reads h in a pattern no prefetcher follows, half of it last written by
      // another core: a sequential copy first takes each line across once, at full speed.
      std::memcpy(hl, st.hin, sizeof(T) * BH);
      FwdStep<T> mine = units_from(st, u.u0, n);
      if (gru) {  // gh = h W_hh^T, own columns, apart
        for (int g = 0; g < gates; ++g)
          k.mm(Bn, Hn, n, hl, Hn, wph + int64_t(g) * Hn * n, n, gh + int64_t(g) * n, width,
               false);
        mine.gh = gh;
        mine.ghs = n;
        mine.ldgh = width;
      } else {  // a += h W_hh^T, own columns
        for (int g = 0; g < gates; ++g)
          k.mm(Bn, Hn, n, hl, Hn, wph + int64_t(g) * Hn * n, n, mine.a + int64_t(g) * Hn, G,
               true);
      }
      rows(mine);
      barrier.wait(threads);
    }
  });
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
  const int64_t layer_macs = TB * G * (In + Hn);
  const bool dnn_big = onednn::wanted<T>(TB, layer_macs);
  const bool fold_hh = mode != GRU;
  const Kernels<T>& k = kernels<T>();
  const bool few_steps = Tn <= 2;
  const int split = few_steps ? 1 : split_threads<T>(Bn, G, Hn);
  const int team = few_steps || split > 1 ? 1 : team_threads<T>(Bn, G, Hn);
  const bool dnn_step = onednn::wanted<T>(Bn, layer_macs) && !few_steps && split == 1;
  // xp = x W_ih^T + b_ih (+ b_hh) of steps [t0, t0 + count), as a (count, B, G) tensor: one
  // GEMM over all their rows. oneDNN adds the bias itself; after BLAS the row pass adds it
  // (`xb`), in cache, where filling bias rows first cost a pass over all of xp on one thread.
  at::Tensor bias;
  if (w.b_ih) bias = fold_hh ? w.b_ih_t + w.b_hh_t : w.b_ih_t.contiguous();
  auto project = [&](int t0, int count) -> at::Tensor {
    const int64_t rows = int64_t(count) * Bn;
    const T* xs = x + int64_t(t0) * Bn * In;
    if (dnn_big) {
      const at::Tensor x2 = at::from_blob(const_cast<T*>(xs), {rows, In}, opt);
      return onednn::linear(x2, w.w_ih_t, bias, at::Tensor()).view({count, Bn, G});
    }
    at::Tensor xp_t = pooled_empty({count, Bn, G}, opt);
    gemm(false, true, int(rows), G, In, xs, In, w.w_ih, In, T(0), xp_t.data_ptr<T>(), G);
    return xp_t;
  };
  // The whole xp at once where the backward keeps it (LSTM/RNN activations) or the layer is
  // small; a team computes its own. Otherwise chunks of about kXpChunkRows rows, made as the
  // steps reach them: a fresh (T, B, G) buffer of more than 32 MB costs a page fault per 4 KB
  // at every call (glibc maps it anew), where a chunk reuses the memory the last one freed
  // (measured: the (64, 100, 512) LSTM's input products ran 25% faster).
  const int chunk = team > 1 || split > 1 || keep || TB <= 2 * kXpChunkRows
                        ? Tn : std::max<int>(1, int(kXpChunkRows / Bn));
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

  // Pre-transposed recurrent weights W_hh^T (H, G): the per-step GEMM reads them row by row.
  // A call of one or two steps skips the transpose (it would cost more than it saves), and so
  // does oneDNN, which takes W_hh (G, H) as it is.
  const bool transpose = !few_steps && team == 1 && !dnn_step;
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
    at::Tensor wih_t = pooled_empty({In, G}, opt);  // W_ih^T (I, G)
    k.transpose(w.w_ih, G, In, wih_t.data_ptr<T>(), G);
    forward_split<T>(split, k, rows, s, Tn, reverse, In, x, wih_t.data_ptr<T>(),
                     bias.defined() ? bias.data_ptr<T>() : nullptr, xp, wt,
                     keep ? hprev_t.data_ptr<T>() : nullptr, act_t, cprev_t, tanhc_t, opt);
  } else {
    forward_loop<T>(k, rows, s, Tn, reverse, xp_at, wt, few_steps ? w.w_hh : nullptr,
                    dnn_step ? w.w_hh_t : at::Tensor(), keep ? hprev_t.data_ptr<T>() : nullptr,
                    act_t, cprev_t, tanhc_t, opt);
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
  at::Tensor dgx_t = pooled_empty({Tn, Bn, G}, opt);
  at::Tensor dgh_t = mode == GRU ? pooled_empty({Tn, Bn, G}, opt) : dgx_t;
  T* dgx = dgx_t.data_ptr<T>();
  T* dgh = dgh_t.data_ptr<T>();
  const T* hprev = saved[1].data_ptr<T>();
  BwdStep<T> s{};
  s.mode = mode; s.B = Bn; s.H = Hn; s.G = G; s.ldo = ldo; s.len = len; s.n = Hn;
  s.aw = mode == GRU ? 4 * Hn : G;
  s.dh = dh; s.dc = dc;
  const Kernels<T>& k = kernels<T>();
  const int64_t layer_macs = TB * G * (In + Hn);
  auto at_step = [&](BwdStep<T>& st, int step) {  // moves st's pointers to the step's time
    const int t = reverse ? step : Tn - 1 - step;  // the forward's steps, last first
    const int64_t r = int64_t(t) * Bn;
    st.t = t;
    st.act = saved[0].data_ptr<T>() + r * st.aw;
    st.hprev = hprev + r * Hn;
    if (mode == LSTM) {
      st.cprev = saved[2].data_ptr<T>() + r * Hn;
      st.tanhc = saved[3].data_ptr<T>() + r * Hn;
    }
    st.dout = dout + r * ldo;
    st.dgx = dgx + r * G;
    st.dgh = dgh + r * G;
  };
  // The parameter gradients and dx (+)= dGx W_ih of rows [r0, r0 + rows) of the (T, B, *)
  // buffers, for the pipelined loop below: the first part overwrites, later parts add.
  std::vector<T> col_sums(G);
  auto grads_part = [&](int64_t r0, int64_t rows, bool first) {
    const T beta = first ? T(0) : T(1);
    gemm(true, false, G, In, int(rows), dgx + r0 * G, G, x + r0 * In, In, beta, dw_ih, In);
    gemm(true, false, G, Hn, int(rows), dgh + r0 * G, G, hprev + r0 * Hn, Hn, beta, dw_hh, Hn);
    for (int pass = 0; db_ih && pass < (dgh == dgx ? 1 : 2); ++pass) {
      const T* __restrict dg = (pass == 0 ? dgx : dgh) + r0 * G;
      T* __restrict sum = col_sums.data();
      std::memcpy(sum, dg, sizeof(T) * G);  // the part's sum first, then added: sums of a few
      for (int64_t r = 1; r < rows; ++r) {  // hundred rows, not one running sum over all
#pragma omp simd
        for (int j = 0; j < G; ++j) sum[j] += dg[r * G + j];
      }
      T* __restrict db = pass == 0 ? db_ih : db_hh;
#pragma omp simd
      for (int j = 0; j < G; ++j) db[j] = first ? sum[j] : db[j] + sum[j];
    }
    if (db_ih && dgh == dgx) std::memcpy(db_hh, db_ih, sizeof(T) * G);
    if (dx) {
      gemm(false, false, int(rows), In, G, dgx + r0 * G, G, w.w_ih, In,
           dx_accumulate ? T(1) : T(0), dx + r0 * In, In);
    }
  };
  // A team in the backward needs 64 units per thread (128 for a plain RNN): below, it
  // measured 5-20% slower than one thread, above 5-10% faster (unless set_team forces teams).
  int team = Tn < 2 ? 1 : team_threads<T>(Bn, G, Hn);
  if (kTeamMacs > 0) team = std::max(1, std::min(team, Hn / (G == Hn ? 128 : 64)));
  // Small steps on one thread (the product below kParallelStepMacs, the row pass below
  // kParallelRowElems) leave the other cores idle: there the parameter gradients run on a
  // second thread a chunk of steps behind the loop instead of after it, given two chunks at
  // least (with one, the second thread only waits: the (1, 100, 128) RNN ran 30% slower).
  const int split = Tn < 2 ? 1 : split_threads<T>(Bn, G, Hn);
  if (split > 1) team = 1;
  const bool pipelined = team == 1 && split == 1 && kPipelineRows > 0 && Tn >= 4 &&
                         TB >= 2 * kPipelineRows && Bn <= kSmallBatch &&
                         int64_t(Bn) * G * Hn < kParallelStepMacs &&
                         int64_t(Bn) * G < kParallelRowElems && at::get_num_threads() >= 2 &&
                         !at::in_parallel_region();
  if (team > 1) {
    // One region for all steps (as forward_team): thread p runs the elementwise pass on its
    // units, and after the barrier (dG of the step complete) its columns of dh += dG W_hh.
    // dG has a slot per step, so the next step's pass may start while a thread still reads it.
    // Per thread: its columns of W_hh, (G, n) contiguous, and a copy of the step's dG (read
    // in a pattern no prefetcher follows, half of it written by the other core).
    const int64_t local = (int64_t(Bn) * G + 15) / 16 * 16 + 16;
    at::Tensor work_t = pooled_empty({int64_t(G) * Hn + team * local}, opt);
    T* packed = work_t.data_ptr<T>();
    T* dg_local = packed + int64_t(G) * Hn;
    rk_common::run_team(team, [&](int p, int threads, rk_common::SpinBarrier& barrier) {
      const rk_common::UnitSlice u = rk_common::unit_slice(Hn, p, threads, 64 / int(sizeof(T)));
      T* wp = packed + int64_t(G) * u.u0;  // (G, n)
      T* dgl = dg_local + p * local;       // (B, G)
      for (int r = 0; r < G; ++r)
        std::memcpy(wp + int64_t(r) * u.n, w.w_hh + int64_t(r) * Hn + u.u0, sizeof(T) * u.n);
      BwdStep<T> st = s;
      for (int step = 0; step < Tn; ++step) {
        at_step(st, step);
        k.bwd(units_from(st, u.u0, u.n));
        barrier.wait(threads);
        std::memcpy(dgl, st.dgh, sizeof(T) * Bn * G);
        k.mm(Bn, G, u.n, dgl, G, wp, u.n, dh + u.u0, Hn, true);
      }
    });
  } else if (split > 1) {
    // Split by batch rows (as forward_split): each thread runs the loop for its own rows.
    rk_common::run_team(split, [&](int p, int nt, rk_common::SpinBarrier&) {
      const int b0 = int(int64_t(Bn) * p / nt), b1 = int(int64_t(Bn) * (p + 1) / nt);
      if (b0 == b1) return;
      BwdStep<T> st = s;
      for (int step = 0; step < Tn; ++step) {
        at_step(st, step);
        BwdStep<T> mine = rows_from(st, b0, b1);
        k.bwd(mine);
        k.mm(b1 - b0, G, Hn, mine.dgh, G, w.w_hh, Hn, mine.dh, Hn, true);  // dh += dG_h W_hh
      }
    });
  } else if (pipelined) {
    // Thread 0 runs the step loop; thread 1 follows a chunk behind with the parameter
    // gradients and dx of the chunks done so far, on a core that would otherwise wait.
    std::atomic<int> done{0};  // steps finished by thread 0
    const int chunk = std::max(1, int(kPipelineRows / Bn));
    rk_common::run_team(2, [&](int p, int threads, rk_common::SpinBarrier&) {
      if (p == 0) {
        for (int step = 0; step < Tn; ++step) {
          at_step(s, step);
          k.bwd(s);
          k.mm(Bn, G, Hn, s.dgh, G, w.w_hh, Hn, dh, Hn, true);  // dh_prev += dG_h[t] W_hh
          done.store(step + 1, std::memory_order_release);
        }
      }
      if (p == threads - 1) {  // with one thread granted, the same thread does both in turn
        BlasThreads one(0, 1);
        for (int s0 = 0; s0 < Tn; s0 += chunk) {
          const int s1 = std::min(Tn, s0 + chunk);
          rk_common::wait_until([&] { return done.load(std::memory_order_acquire) >= s1; });
          const int t0 = reverse ? s0 : Tn - s1;  // the chunk's first time index
          grads_part(int64_t(t0) * Bn, int64_t(s1 - s0) * Bn, s0 == 0);
        }
      }
    });
  } else {
    BlasThreads threads(int64_t(Bn) * G * Hn, kSerialStepMacs);
    const bool dnn_step = onednn::wanted<T>(Bn, layer_macs);
    const StepGemm<T> step_gemm(Bn, Hn, G, w.w_hh, opt, nullptr,  // (B, G) x W_hh (G, H)
                                dnn_step ? w.w_hh_t.t().contiguous() : at::Tensor());
    for (int step = 0; step < Tn; ++step) {
      at_step(s, step);
      run_rows(k.bwd, s);
      // dh_prev += dG_h[t] W_hh: through a = ... + W_hh h_prev.  (B, G) x (G, H)
      step_gemm.run(k, s.dgh, dh, true);
    }
  }
  if (pipelined) return;
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
  rk_checks::layer_forward(mode, x_in, h0, c0, w_in, lengths_in);  // before any pointer
  rk_common::init_threads();
  const at::Tensor x = x_in.contiguous(), lengths = lengths_in.contiguous();
  const std::vector<at::Tensor> w = contiguous_all(w_in);
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const int D = int(w.size() / 4), Hn = h0.size(2);
  auto opt = x.options();
  at::Tensor out = pooled_empty({Tn, Bn, D * Hn}, opt);
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
        "oneDNN for float32 products: 0 never, 1 when large enough and not on an Intel CPU "
        "(default), 2 always; "
        "returns the old value");
  m.def("has_onednn", [] { return onednn::ops() != nullptr; },
        "whether libtorch's oneDNN matrix products are available");
  m.def("set_parallel_step_macs",
        [](int64_t n) { int64_t old = kParallelStepMacs; kParallelStepMacs = n; return old; },
        "smallest blocked step GEMM split over threads, in multiply-adds; returns the old value");
  rk_common::def_set_team(m, &kTeamBatch, &kTeamMacs);
  m.def("set_team_large_macs",
        [](int64_t n) { int64_t old = kTeamLargeMacs; kTeamLargeMacs = n; return old; },
        "most multiply-adds per step product for a team above the small-batch limit; returns "
        "the old value");
  m.def("set_xp_chunk_rows",
        [](int64_t n) { int64_t old = kXpChunkRows; kXpChunkRows = n; return old; },
        "rows of the input projections computed at a time in inference; returns the old value");
  m.def("release_cache", [] { return rk_common::BufferPool::get().release(); },
        "frees the engine's cached buffers; returns the bytes freed");
  m.def("cache_bytes", [] { return rk_common::BufferPool::get().waiting_bytes(); },
        "bytes of freed buffers the engine keeps for reuse");
  m.def("set_cache_limit",
        [](size_t bytes) { return rk_common::BufferPool::get().set_limit(bytes); },
        "most bytes of freed buffers kept for reuse (0: no cache); returns the old limit");
  m.def("set_pipeline_rows",
        [](int64_t n) { int64_t old = kPipelineRows; kPipelineRows = n; return old; },
        "rows of dG per chunk of the pipelined backward (0: no pipeline); returns the old value");
  m.def("set_split_rows", [](int r) { int old = kSplitRows; kSplitRows = r; return old; },
        "fewest batch rows per thread for a step loop split by batch rows (0: never); returns "
        "the old value");
  m.def("set_small_batch", [](int b) { int old = kSmallBatch; kSmallBatch = b; return old; },
        "largest batch for the register-blocked step GEMM (above: BLAS); returns the old value");
}
