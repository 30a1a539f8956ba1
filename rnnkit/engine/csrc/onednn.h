// oneDNN's matrix products, for both kernel families (layer and direction kernels), reached
// through the mkldnn operators libtorch registers (the library torch.nn's own LSTM runs on):
// the rule that chooses them over BLAS, the weight reorder, the inner product, and `big_gemm`
// for the products over all T*B rows of a call. Where MKL's SGEMM does not pick its fastest
// kernels (AMD Zen), oneDNN's are much faster: on a Zen 3, (64 x 512) x (512 x 2048) ran at 204
// GFLOP/s against MKL's 127; on a Zen 5 with AVX-512, 1.6-2.4x MKL's speed at every size. float32
// only. The step products take the weight once reordered into oneDNN's blocked layout, so a
// layer call reorders each weight once and reuses it at every step. Included inside a kernel
// file's anonymous namespace (after `tuned` and `gemm`); must not include headers.
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

// W (N, K) row-major, reordered for products with about `rows` rows (0: any number).
at::Tensor reorder(const at::Tensor& w, int64_t rows) {
  torch::jit::Stack stack{w.contiguous(), c10::IValue(rows)};
  ops()->reorder.callBoxed(stack);
  return stack[0].toTensor();
}

// W reordered for one product of `rows` rows and `macs` multiply-adds. The layout made for that
// many rows runs the product 5-15% faster, but making it took 100-150 us more than the generic
// layout (AMD EPYC Zen 5): worth it for a step product's weight, reused at every step, and for
// one product from about 2^27 multiply-adds (a (6400 x 256) x (256 x 1024) product: 7.6 ms +
// 0.18 ms against 8.0 ms + 0.03 ms; a (700 x 800) x (800 x 200) one: 0.50 + 0.12 ms against
// 0.57 + 0.03 ms).
at::Tensor reorder_once(const at::Tensor& w, int64_t rows, int64_t macs) {
  return reorder(w, macs >= (int64_t(1) << 27) ? rows : 0);
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

// C (m, n) = op(A) (m, k) op(B) (k, n) + beta C (row-major, beta 0 or 1; the arguments of
// rk_common::gemm), for a product over all T*B rows of a layer call of `layer_macs`
// multiply-adds: oneDNN where `wanted`, else BLAS. A^T B (a weight gradient, summed over the
// rows) runs as oneDNN's inner-product backward by weights, which reads both operands in their
// row layout; A B^T and A B as oneDNN's inner product (B^T the weight, reordered once). On an
// AMD EPYC Zen 5 (AVX-512) these ran 1.6-2.4x faster than MKL's SGEMM, which takes its AVX2
// kernels there: (6400 x 1024)^T (6400 x 256) in 9.2 ms against 18.1 ms, 2 threads.
template <typename T>
void big_gemm(bool ta, bool tb, int m, int n, int k, const T* a, int lda, const T* b, int ldb,
              T beta, T* c, int ldc, int64_t layer_macs) {
  if ((ta && tb) || !wanted<T>(ta ? k : m, layer_macs)) {
    gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, int rows, int cols, int ld) {
    return at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1}, opt);
  };
  at::Tensor out;
  if (ta) {  // A (k, m), B (k, n): dW = dY^T X with dY = A, X = B
    const at::Tensor dy = view(a, k, m, lda).contiguous().to_mkldnn();
    const at::Tensor x = view(b, k, n, ldb).contiguous().to_mkldnn();
    out = std::get<0>(at::mkldnn_linear_backward_weights(dy, x, at::empty({m, n}, opt), false));
  } else {   // the inner product's weight (n, k) is B^T: B itself when tb, else a transpose
    const at::Tensor w = tb ? view(b, n, k, ldb) : view(b, k, n, ldb).t();
    out = linear(view(a, m, k, lda).contiguous(), reorder_once(w, m, int64_t(m) * n * k),
                 at::Tensor(), at::Tensor());
  }
  const T* __restrict src = out.data_ptr<T>();
  for (int i = 0; i < m; ++i) {
    T* __restrict dst = c + int64_t(i) * ldc;
    const T* __restrict row = src + int64_t(i) * n;
    if (beta == T(0)) {
      std::memcpy(dst, row, sizeof(T) * n);
    } else {
#pragma omp simd
      for (int j = 0; j < n; ++j) dst[j] += row[j];
    }
  }
}

// dW1 = dY^T X1 (N, K1) and dW2 = dY^T X2 (N, K2) over `rows` rows, with dY copied into oneDNN
// once (the LSTM's and the plain RNN's two weight gradients share their dG: a pass over 26 MB
// saved at (64, 100, 256)); false, computing nothing, where `big_gemm` would not use oneDNN.
template <typename T>
bool weight_grads_shared(int64_t rows, int N, const T* dy, int K1, const T* x1, T* dw1, int K2,
                         const T* x2, T* dw2, int64_t layer_macs) {
  if (!wanted<T>(rows, layer_macs)) return false;
  const auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto dense = [&](const T* p, int cols) {
    return at::from_blob(const_cast<T*>(p), {rows, int64_t(cols)}, opt).to_mkldnn();
  };
  const at::Tensor g = dense(dy, N);
  for (const auto& [K, x, dw] : {std::tuple{K1, x1, dw1}, std::tuple{K2, x2, dw2}}) {
    const at::Tensor out = std::get<0>(
        at::mkldnn_linear_backward_weights(g, dense(x, K), at::empty({N, K}, opt), false));
    std::memcpy(dw, out.data_ptr<T>(), sizeof(T) * N * K);
  }
  return true;
}

}  // namespace onednn
