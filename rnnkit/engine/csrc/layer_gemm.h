// The layer kernels' per-step product StepGemm (register-blocked, oneDNN, MKL packed, or plain
// BLAS; oneDNN's products are in onednn.h). Included inside layer_kernels.cpp's anonymous
// namespace; must not include headers.

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
    if (onednn_nk.defined()) {  // the layout for B rows pays off over many steps only
      dnn = pack ? onednn::reorder(onednn_nk, B)
                 : onednn::reorder_once(onednn_nk, B, int64_t(B) * N * K);
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
