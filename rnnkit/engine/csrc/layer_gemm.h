// The layer kernels' per-step product StepGemm (register-blocked on weights packed in panels,
// oneDNN, MKL packed, or plain BLAS; oneDNN's products are in onednn.h), and the packed and the
// weight-layout products alone for the tests. Included inside layer_kernels.cpp's anonymous namespace; must not include
// headers.

// The per-step GEMM c (B, N) (+)= a (B, K) M, for a fixed matrix M used at every step, given as
// either mt = M^T (N, K) row-major (`transposed`) or M (K, N) row-major. Batches up to
// tuned.small_batch use the register-blocked kernel on M packed in panels (given, or packed
// here from M (K, N)); larger float batches use oneDNN when the caller passes M^T as a tensor
// (`onednn_nk`, reordered once per layer call), or MKL's packed GEMM, packing M once per layer
// call instead of once per step; else plain BLAS.
template <typename T>
struct StepGemm {
  int B, N, K;
  const T* m_kn = nullptr;  // M (K, N), for the small kernel and plain BLAS
  const T* m_nk = nullptr;  // or M^T (N, K): calls of one or two steps (step_mm_nt or BLAS)
  at::Tensor panels;        // M packed for the register-blocked kernel (batches it takes)
  at::Tensor packed;        // MKL-packed M, when used
  at::Tensor dnn;           // oneDNN-reordered M^T, when used
  at::TensorOptions opt;
  // `pack` false: plain BLAS for large batches and M row-major for small ones (a call of one
  // or two steps, where packing M costs more than it saves). `panels_`: M already packed.
  StepGemm(int B_, int N_, int K_, const T* m_kn_, const at::TensorOptions& opt_,
           const T* m_nk_ = nullptr, const at::Tensor& onednn_nk = at::Tensor(),
           bool pack = true, const at::Tensor& panels_ = at::Tensor())
      : B(B_), N(N_), K(K_), m_kn(m_kn_), m_nk(m_nk_), panels(panels_), opt(opt_) {
    if (panels.defined()) return;
    if (onednn_nk.defined()) {  // the layout for B rows pays off over many steps only
      dnn = pack ? onednn::reorder(onednn_nk, B)
                 : onednn::reorder_once(onednn_nk, B, int64_t(B) * N * K);
      return;
    }
    if (m_nk || !pack) return;
    if (B <= tuned.small_batch) {
      panels = rk_common::pack_panels(kernels<T>().pack, K, N, m_kn, N, false, opt);
      return;
    }
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
    const T* mp = panels.defined() ? panels.data_ptr<T>() : nullptr;
    rk_common::split_columns(N, int64_t(B) * N * K, tuned.parallel_step_macs, [&](int n0, int n1) {
      if (mp)
        k.mm_packed(B, K, n1 - n0, a, K, mp + int64_t(n0) * K, c + n0, N, accumulate, nullptr);
      else
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
    if (panels.defined() || B <= tuned.small_batch) {
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

// The packed step product on its own, for the tests: a (B, K) M (+ c or bias) with M given as
// W (N, K) (`m_nk`) or as M (K, N), packed, then multiplied by columns [n0, N) and [0, n0)
// separately (n0 a multiple of the panel width: the column ranges a thread split uses).
at::Tensor packed_product(const at::Tensor& a, const at::Tensor& m, const at::Tensor& c,
                          const at::Tensor& bias, bool m_nk, int64_t n0) {
  const char* fn = "packed_product";
  TORCH_CHECK_VALUE(a.dim() == 2 && m.dim() == 2 && a.is_contiguous() && m.is_contiguous(), fn,
                    ": a and m must be contiguous matrices, got shapes ", a.sizes(), " and ",
                    m.sizes());
  TORCH_CHECK_VALUE((a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble) &&
                        m.scalar_type() == a.scalar_type(),
                    fn, ": a and m must both be float32 or float64");
  const int64_t B = a.size(0), K = a.size(1), N = m_nk ? m.size(0) : m.size(1);
  TORCH_CHECK_VALUE((m_nk ? m.size(1) : m.size(0)) == K && B > 0 && K > 0 && N > 0, fn,
                    ": m has shape ", m.sizes(), ", expected ", m_nk ? "(N, K)" : "(K, N)",
                    " with K = ", K, " (a's columns)");
  TORCH_CHECK_VALUE(n0 >= 0 && n0 <= N, fn, ": n0 = ", n0, " must lie in [0, N = ", N, "]");
  const bool acc = c.numel() > 0;
  TORCH_CHECK_VALUE(!acc || (c.sizes() == at::IntArrayRef({B, N}) && c.is_contiguous() &&
                             c.scalar_type() == a.scalar_type()),
                    fn, ": c must be empty or a contiguous (B, N) matrix of a's dtype");
  TORCH_CHECK_VALUE(bias.numel() == 0 || (bias.numel() == N && bias.is_contiguous() &&
                                          bias.scalar_type() == a.scalar_type()),
                    fn, ": bias must be empty or a contiguous (N) vector of a's dtype");
  at::Tensor out = acc ? c.clone() : at::empty({B, N}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "packed_product", [&] {
    const Kernels<scalar_t>& k = kernels<scalar_t>();
    const int pw = k.pack_width;
    TORCH_CHECK_VALUE(n0 % pw == 0, fn, ": n0 = ", n0, " is not a multiple of the panel width ",
                      pw);
    const at::Tensor mp = rk_common::pack_panels(k.pack, int(K), int(N), m.data_ptr<scalar_t>(),
                                                 int(m_nk ? K : N), m_nk, a.options());
    const scalar_t* b = bias.numel() > 0 ? bias.data_ptr<scalar_t>() : nullptr;
    scalar_t* o = out.data_ptr<scalar_t>();
    for (const auto& [c0, c1] : {std::pair<int64_t, int64_t>{n0, N}, {0, n0}}) {
      if (c1 > c0)
        k.mm_packed(int(B), int(K), int(c1 - c0), a.data_ptr<scalar_t>(), int(K),
                    mp.data_ptr<scalar_t>() + c0 * K, o + c0, int(N), acc, b ? b + c0 : nullptr);
    }
  });
  return out;
}

// The weight-layout product on its own, for the tests: a (B, K) w^T (+ c), w (N, K); a and w
// may be views with rows apart (their last stride 1), as the kernels' callers pass them.
at::Tensor nt_product(const at::Tensor& a, const at::Tensor& w, const at::Tensor& c) {
  const char* fn = "nt_product";
  TORCH_CHECK_VALUE(a.dim() == 2 && w.dim() == 2 && a.stride(1) == 1 && w.stride(1) == 1 &&
                        a.size(1) == w.size(1) && a.size(0) > 0 && w.size(0) > 0,
                    fn, ": a (B, K) and w (N, K) must be matrices with unit last stride, got ",
                    a.sizes(), " and ", w.sizes());
  TORCH_CHECK_VALUE((a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble) &&
                        w.scalar_type() == a.scalar_type(),
                    fn, ": a and w must both be float32 or float64");
  const int64_t B = a.size(0), K = a.size(1), N = w.size(0);
  const bool acc = c.numel() > 0;
  TORCH_CHECK_VALUE(!acc || (c.sizes() == at::IntArrayRef({B, N}) && c.is_contiguous() &&
                             c.scalar_type() == a.scalar_type()),
                    fn, ": c must be empty or a contiguous (B, N) matrix of a's dtype");
  at::Tensor out = acc ? c.clone() : at::empty({B, N}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "nt_product", [&] {
    kernels<scalar_t>().mm_nt(int(B), int(K), int(N), a.data_ptr<scalar_t>(), int(a.stride(0)),
                              w.data_ptr<scalar_t>(), int(w.stride(0)),
                              out.data_ptr<scalar_t>(), int(N), acc);
  });
  return out;
}
