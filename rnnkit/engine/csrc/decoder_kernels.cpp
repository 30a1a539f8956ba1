// One inference step of an attention decoder in one call (Seq2Seq.decode_step on the engine):
//
//   x      = [E[token], feed]                 embedding row, the last step's vec (input feeding)
//   h      = cell(x, h_prev)                  the layer kernels (layer_kernels.cpp), one step
//   score  = h . k_s  (dot)  or  h . (W k_s)  (general: the projected keys, computed once)
//            or v . tanh(W_q h_prev + W_k k_s + b)  (Bahdanau: before the step, ctx joins x)
//   a      = softmax over the source positions the mask keeps
//   ctx    = sum_s a_s k_s
//   vec    = tanh(W_c [h, ctx])               (no attention: vec = h)
//   logits = W_o vec + b_o
//
// Called once per generated token, where the same step as separate torch ops costs a dispatch
// and an allocation per op and the attention's batched (1 x H) (H x S) products run far below
// the machine's speed. Autograd never records it: the Python side uses it under no_grad only.
// Shapes: N rows, S source positions, E embedding size, H hidden size, K key size, V vocabulary.

#include <torch/extension.h>

#include "engine_common.h"
#include "isa.h"
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace rk_layers {
std::vector<at::Tensor> forward(int64_t mode, const at::Tensor& x, const at::Tensor& h0,
                                const at::Tensor& c0, const std::vector<at::Tensor>& w);
}

namespace {

constexpr const char* kFn = "decode_step";

void check_matrix(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t dim) {
  TORCH_CHECK_VALUE(t.defined() && t.device().is_cpu() && t.scalar_type() == dtype &&
                        t.dim() == dim,
                    kFn, ": ", name, " must be a ", dim, "-D CPU ", dtype, " tensor, got ",
                    t.defined() ? t.toString() : std::string("undefined"), " of shape ",
                    t.defined() ? t.sizes() : at::IntArrayRef{});
}

#define RK_ISA_BODY "decoder_rows.h"
#include "per_isa.h"

template <typename T>
struct DecoderRows {
  void (*attend)(int, int, int, int, int, int, const T*, const T*, const T*, const bool*,
                 const T*, T*, T*, int64_t);
  void (*tanh)(T*, int64_t);
};
#define RK_DECODER_TABLE(NS) \
  std::pair{DecoderRows<float>{NS::attend_f, NS::tanh_f}, DecoderRows<double>{NS::attend_d, NS::tanh_d}}

template <typename T>
const DecoderRows<T>& decoder_rows() {
  static const auto table = [] {
    switch (rk_isa::chosen()) {
      case rk_isa::Isa::avx512: return RK_DECODER_TABLE(isa_avx512);
      case rk_isa::Isa::avx2: return RK_DECODER_TABLE(isa_avx2);
      default: return RK_DECODER_TABLE(isa_base);
    }
  }();
  if constexpr (std::is_same_v<T, float>) return table.first;
  else return table.second;
}

// The attention of all N rows: weights (N, S) and the contexts, written at ctx + n * ldc; rows
// split over torch's threads when there are enough of them (a beam's 320 rows), unless another
// process holds a core (engine_common.h).
template <typename T>
void attend(int64_t N, int64_t S, int64_t H, int64_t K, const T* q, const at::Tensor& pk,
            const at::Tensor& keys, const at::Tensor& mask, const T* v, T* weights, T* ctx,
            int64_t ldc) {
  const T* pk_p = pk.data_ptr<T>();
  const T* keys_p = keys.data_ptr<T>();
  const bool* mask_p = mask.data_ptr<bool>();
  const auto& rows = decoder_rows<T>();
  const int64_t grain = rk_common::contended()
                            ? N : std::max<int64_t>(1, 32768 / std::max<int64_t>(1, S * (H + K)));
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    rows.attend(int(n0), int(n1), int(N), int(S), int(H), int(K), q, pk_p, keys_p, mask_p, v,
                weights, ctx, ldc);
  });
}

// Returns {logits (N, V), h_n, c_n (empty unless LSTM), vec (N, H), weights (N, S) or empty}.
// Attention: none (keys empty), Luong (w_query empty: scores against the new h), or Bahdanau
// (w_query (H, H) and v (H): scores from the previous h, the context joins the cell's input).
std::vector<at::Tensor> decode_step(int64_t mode, const at::Tensor& tokens,
                                    const at::Tensor& embedding, const at::Tensor& feed,
                                    const at::Tensor& h0, const at::Tensor& c0,
                                    const std::vector<at::Tensor>& w, const at::Tensor& keys_in,
                                    const at::Tensor& projected_in, const at::Tensor& mask_in,
                                    const at::Tensor& w_combine, const at::Tensor& w_query,
                                    const at::Tensor& v_score, const at::Tensor& w_out,
                                    const at::Tensor& b_out) {
  rk_common::init_threads();
  check_matrix(embedding, "embedding",
               embedding.defined() ? embedding.scalar_type() : at::kFloat, 2);
  const at::ScalarType dt = embedding.scalar_type();
  TORCH_CHECK_VALUE(dt == at::kFloat || dt == at::kDouble, kFn, ": embedding has dtype ", dt,
                    ", expected float32 or float64");
  TORCH_CHECK_VALUE(tokens.defined() && tokens.device().is_cpu() &&
                        tokens.scalar_type() == at::kLong && tokens.dim() == 1,
                    kFn, ": tokens must be a 1-D CPU int64 tensor");
  const int64_t N = tokens.size(0), E = embedding.size(1), V_in = embedding.size(0);
  const at::Tensor tok = tokens.contiguous();
  const int64_t* ids = tok.data_ptr<int64_t>();
  for (int64_t n = 0; n < N; ++n)
    TORCH_CHECK_VALUE(ids[n] >= 0 && ids[n] < V_in, kFn, ": tokens[", n, "] is ", ids[n],
                      ", expected an id in [0, ", V_in, ")");
  const bool feeding = feed.numel() > 0;
  if (feeding) {
    check_matrix(feed, "feed", dt, 2);
    TORCH_CHECK_VALUE(feed.size(0) == N, kFn, ": feed has ", feed.size(0), " rows, expected ", N);
  }
  const int64_t F = feeding ? feed.size(1) : 0;
  // The attention's operands, checked before any work.
  const bool att = keys_in.numel() > 0, additive = att && w_query.numel() > 0;
  const int64_t H = w.size() >= 2 && w[1].dim() == 2 ? w[1].size(1) : 0;  // W_hh (G, H)
  int64_t S = 0, K = 0;
  at::Tensor keys, pk, mask;
  if (att) {
    check_matrix(keys_in, "keys", dt, 3);
    check_matrix(projected_in, "projected", dt, 3);
    TORCH_CHECK_VALUE(mask_in.defined() && mask_in.device().is_cpu() &&
                          mask_in.scalar_type() == at::kBool && mask_in.dim() == 2,
                      kFn, ": mask must be a 2-D CPU bool tensor");
    S = keys_in.size(0), K = keys_in.size(2);
    TORCH_CHECK_VALUE(keys_in.size(1) == N && projected_in.size(0) == S &&
                          projected_in.size(1) == N && projected_in.size(2) == H &&
                          mask_in.size(0) == S && mask_in.size(1) == N,
                      kFn, ": keys ", keys_in.sizes(), ", projected ", projected_in.sizes(),
                      " and mask ", mask_in.sizes(), " do not fit ", N, " rows of hidden size ", H);
    check_matrix(w_combine, "w_combine", dt, 2);
    TORCH_CHECK_VALUE(w_combine.size(0) == H && w_combine.size(1) == H + K, kFn,
                      ": w_combine has shape ", w_combine.sizes(), ", expected (", H, ", ", H + K,
                      ")");
    if (additive) {
      check_matrix(w_query, "w_query", dt, 2);
      check_matrix(v_score, "v", dt, 1);
      TORCH_CHECK_VALUE(w_query.size(0) == H && w_query.size(1) == H && v_score.size(0) == H,
                        kFn, ": w_query ", w_query.sizes(), " and v ", v_score.sizes(),
                        " do not fit hidden size ", H);
      TORCH_CHECK_VALUE(h0.dim() == 3 && h0.size(0) == 1 && h0.size(1) == N && h0.size(2) == H &&
                            h0.scalar_type() == dt,
                        kFn, ": Bahdanau attention needs h0 of shape (1, ", N, ", ", H,
                        "), got ", h0.sizes());
    }
    keys = keys_in.contiguous(), pk = projected_in.contiguous(), mask = mask_in.contiguous();
  }
  const int64_t C = additive ? K : 0;  // the context's part of the cell's input
  const auto opt = embedding.options();
  at::Tensor weights = att ? at::empty({N, S}, opt) : at::empty({0}, opt);
  at::Tensor hc = att ? at::empty({N, H + K}, opt) : at::Tensor();  // [h, ctx]
  if (additive) {  // scores from the previous hidden state, before the step
    const at::Tensor qp = at::mm(h0.select(0, 0), w_query.t()).contiguous();  // (N, H)
    const at::Tensor v = v_score.contiguous();
    AT_DISPATCH_FLOATING_TYPES(dt, "rnnkit_decode_bahdanau", [&] {
      attend<scalar_t>(N, S, H, K, qp.data_ptr<scalar_t>(), pk, keys, mask,
                       v.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(),
                       hc.data_ptr<scalar_t>() + H, H + K);
    });
  }
  // x = [E[token], ctx (Bahdanau), feed] as one (1, N, E + C + F) step; the layer kernels check
  // the rest.
  const int64_t X = E + C + F;
  at::Tensor x = at::empty({1, N, X}, opt);
  {
    const at::Tensor emb = embedding.contiguous();
    const at::Tensor fd = feeding ? feed.contiguous() : at::Tensor();
    const int64_t es = emb.element_size();
    char* dst = static_cast<char*>(x.data_ptr());
    const char* hc_p = additive ? static_cast<const char*>(hc.data_ptr()) : nullptr;
    for (int64_t n = 0; n < N; ++n) {
      std::memcpy(dst + n * X * es, static_cast<const char*>(emb.data_ptr()) + ids[n] * E * es,
                  E * es);
      if (additive) std::memcpy(dst + (n * X + E) * es, hc_p + (n * (H + K) + H) * es, K * es);
      if (feeding)
        std::memcpy(dst + (n * X + E + C) * es,
                    static_cast<const char*>(fd.data_ptr()) + n * F * es, F * es);
    }
  }
  std::vector<at::Tensor> r = rk_layers::forward(mode, x, h0, c0, w);
  const at::Tensor h = r[0].view({N, r[0].size(2)});  // (N, H)
  at::Tensor vec = h;
  if (att) {
    hc.narrow(1, 0, H).copy_(h);
    if (!additive) {  // Luong: scores against the new hidden state
      AT_DISPATCH_FLOATING_TYPES(dt, "rnnkit_decode_luong", [&] {
        attend<scalar_t>(N, S, H, K, h.data_ptr<scalar_t>(), pk, keys, mask, nullptr,
                         weights.data_ptr<scalar_t>(), hc.data_ptr<scalar_t>() + H, H + K);
      });
    }
    vec = at::mm(hc, w_combine.t());
    AT_DISPATCH_FLOATING_TYPES(dt, "rnnkit_decode_tanh", [&] {
      decoder_rows<scalar_t>().tanh(vec.data_ptr<scalar_t>(), N * H);
    });
  }
  check_matrix(w_out, "w_out", dt, 2);
  TORCH_CHECK_VALUE(w_out.size(1) == H, kFn, ": w_out has shape ", w_out.sizes(),
                    ", expected (V, ", H, ")");
  const at::Tensor logits =
      b_out.numel() ? at::addmm(b_out, vec, w_out.t()) : at::mm(vec, w_out.t());
  return {logits, r[1], r[2], vec, weights};
}

}  // namespace

namespace rk_bind {

void decoder_kernels(pybind11::module_& m) {
  m.def("decode_step", &decode_step,
        "one inference step of an attention decoder: embedding, cell, Luong or Bahdanau "
        "attention, combine and output layer",
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace rk_bind
