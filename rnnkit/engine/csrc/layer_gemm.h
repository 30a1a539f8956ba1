// The layer kernels' matrix products: oneDNN's (through the operators libtorch registers) and
// the per-step product StepGemm (register-blocked, MKL packed, or plain BLAS). Included inside
// layer_kernels.cpp's anonymous namespace; must not include headers.

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
  if (!std::is_same_v<T, float> || tuned.onednn == 0 || !ops()) return false;
  return tuned.onednn == 2 ||
         (!mkl_preferred() && rows > tuned.small_batch && layer_macs >= tuned.serial_layer_macs);
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
// tuned.small_batch use the register-blocked kernel (which needs M (K, N)); larger float batches
// use oneDNN when the caller passes M^T as a tensor (`onednn_nk`, reordered once per layer call), or
// MKL's packed GEMM, packing M once per layer call instead of once per step; else plain BLAS.
template <typename T>
struct StepGemm {
  int B, N, K;
  const T* m_kn = nullptr;  // M (K, N), for the small kernel and plain BLAS
  const T* m_nk = nullptr;  // or M^T (N, K): calls of one or two steps (step_mm_nt or BLAS)
  at::Tensor packed;        // MKL-packed M, when used
  at::Tensor dnn;           // oneDNN-reordered M^T, when used
  at::TensorOptions opt;
  // `pack` false: plain BLAS for large batches (a call of one or two steps, where packing M
  // costs more than it saves).
  StepGemm(int B_, int N_, int K_, const T* m_kn_, const at::TensorOptions& opt_,
           const T* m_nk_ = nullptr, const at::Tensor& onednn_nk = at::Tensor(),
           bool pack = true)
      : B(B_), N(N_), K(K_), m_kn(m_kn_), m_nk(m_nk_), opt(opt_) {
    if (onednn_nk.defined()) {
      dnn = onednn::reorder(onednn_nk, B);
      return;
    }
    if (m_nk || !pack) return;
    if constexpr (std::is_same_v<T, float>) {
      if (B > tuned.small_batch && sgemm_pack_get_size_ && sgemm_pack_ && sgemm_compute_) {
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
  // The register-blocked kernel; products of at least tuned.parallel_step_macs split their columns
  // over torch's threads.
  void small(const Kernels<T>& k, const T* a, T* c, bool accumulate) const {
    rk_common::split_columns(N, int64_t(B) * N * K, tuned.parallel_step_macs, [&](int n0, int n1) {
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
      if (B <= tuned.few_step_rows)
        k.mm_nt(B, K, N, a, K, m_nk, K, c, N, accumulate);
      else
        gemm(false, true, B, N, K, a, K, m_nk, K, accumulate ? T(1) : T(0), c, N);
      return;
    }
    if (B <= tuned.small_batch) {
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
