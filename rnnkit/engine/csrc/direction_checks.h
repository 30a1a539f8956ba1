// Argument checks of the variant kernels' entry points (included by direction_kernels.cpp inside its
// anonymous namespace, after the cell helpers gate_count / has_c / save_width): every tensor
// the drivers read is checked against the cell, the hidden size (from the state) and the input
// size (from x) before any pointer is taken; a bad one raises ValueError naming the argument
// (rk_checks in checks.h). O(1) per tensor, O(B) for the lengths.

// One entry of a cell's parameter list (`param_specs` order): its name and shape, in units of
// G (gate width), H and I; `optional` entries belong to the bias group (all given or all empty).
struct ParamShape {
  const char* name;
  enum Kind { GI, GH, Gv, Hv, P3H } kind;
  bool optional;
};

struct CellSpec {
  const char* name;
  std::vector<ParamShape> params;
};

inline const CellSpec& cell_spec(int64_t cell) {
  using P = ParamShape;
  static const std::vector<P> plain{{"weight_ih", P::GI, false}, {"weight_hh", P::GH, false},
                                    {"bias_ih", P::Gv, true}, {"bias_hh", P::Gv, true}};
  auto plus = [](std::vector<P> a, std::vector<P> b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  static const std::vector<CellSpec> specs{
      {"RNN_TANH", plain}, {"RNN_RELU", plain}, {"LSTM", plain}, {"GRU", plain},
      {"LSTM_PEEPHOLE", plus(plain, {{"weight_peephole", P::P3H, false}})},
      {"LSTM_LN", plus(plain, {{"ln_ih_weight", P::Gv, false}, {"ln_hh_weight", P::Gv, false},
                               {"ln_c_weight", P::Hv, false}, {"ln_ih_bias", P::Gv, true},
                               {"ln_hh_bias", P::Gv, true}, {"ln_c_bias", P::Hv, true}})},
      {"GRU_LN", plus(plain, {{"ln_ih_weight", P::Gv, false}, {"ln_hh_weight", P::Gv, false},
                              {"ln_ih_bias", P::Gv, true}, {"ln_hh_bias", P::Gv, true}})},
      {"RNN_LEAKY (tanh)", plus(plain, {{"rate_logit", P::Hv, false}})},
      {"RNN_LEAKY (relu)", plus(plain, {{"rate_logit", P::Hv, false}})}};
  return specs[cell];
}

// The weights of one direction, against the cell's spec: the count, each shape, the bias group
// all given or all empty.
inline void variant_weights(const rk_checks::Where& w, int64_t cell, at::ScalarType dtype,
                            const std::vector<at::Tensor>& ws) {
  const CellSpec& spec = cell_spec(cell);
  TORCH_CHECK_VALUE(ws.size() == spec.params.size(), w.fn, ": got ", ws.size(),
                    " weight tensors, expected ", spec.params.size(), " for ", spec.name,
                    " (the cell's parameters in param_specs order, empty for absent ones)");
  const int64_t G = gate_count(cell) * w.H, H = w.H, I = w.I;
  TORCH_CHECK_VALUE(G <= INT_MAX, w.fn, ": gate width ", G, " is more than the engine's int "
                    "sizes hold", w.context());
  int given = -1;  // the bias group: 1 given, 0 empty, -1 not seen yet
  const char* first = nullptr;
  for (size_t i = 0; i < ws.size(); ++i) {
    const ParamShape& p = spec.params[i];
    const std::initializer_list<int64_t> gi{G, I}, gh{G, H}, g{G}, h{H}, p3{3, H};
    const std::initializer_list<int64_t>& want =
        p.kind == ParamShape::GI ? gi : p.kind == ParamShape::GH ? gh
        : p.kind == ParamShape::Gv ? g : p.kind == ParamShape::Hv ? h : p3;
    if (!p.optional) {
      rk_checks::tensor(w, ws[i], p.name, "", dtype, want);
      continue;
    }
    const int has = rk_checks::optional(w, ws[i], p.name, "", dtype, want) ? 1 : 0;
    if (given < 0) {
      given = has;
      first = p.name;
    }
    TORCH_CHECK_VALUE(has == given, w.fn, ": ", p.name, " is ", has ? "given" : "empty",
                      " but ", first, " is ", given ? "given" : "empty",
                      ", expected the bias group all given (bias=True) or all empty");
  }
}

inline void variant_cell(const char* fn, int64_t cell) {
  TORCH_CHECK_VALUE(cell >= 0 && cell <= 8, fn, ": cell is ", cell, ", expected 0 to 8 (RNN_TANH,"
                    " RNN_RELU, LSTM, GRU, LSTM_PEEPHOLE, LSTM_LN, GRU_LN, RNN_LEAKY tanh, relu)");
}

// The regularisers: h_drop (B, H) in x's dtype, zoneout masks (T, B, width) uint8; each empty
// when off.
inline void regularisers(const rk_checks::Where& w, at::ScalarType dtype, int64_t T, int64_t B,
                         const at::Tensor& h_drop, const at::Tensor& m1, const char* n1,
                         int64_t width1, const at::Tensor& m2, const char* n2, int64_t width2) {
  rk_checks::optional(w, h_drop, "h_drop", "", dtype, {B, w.H});
  rk_checks::mask(w, m1, n1, {T, B, width1});
  rk_checks::mask(w, m2, n2, {T, B, width2});
}

// dir_forward(cell, x, h0, c0, weights, lengths, reverse, h_drop, zh, zc, rh, rc, keep):
// x (T, B, I); h0 (B, H); c0 (B, H) for the LSTM family; zh, zc (T, B, H).
inline void dir_forward_args(int64_t cell, const at::Tensor& x, const at::Tensor& h0,
                             const at::Tensor& c0, const std::vector<at::Tensor>& ws,
                             const at::Tensor& len, const at::Tensor& h_drop,
                             const at::Tensor& zh, const at::Tensor& zc) {
  const char* fn = "dir_forward";
  variant_cell(fn, cell);
  rk_checks::input(fn, x);
  const at::ScalarType dt = x.scalar_type();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2);
  const int64_t H = rk_checks::hidden_from(fn, h0, "h0", "(B, H)", 2, dt);
  const rk_checks::Where w{fn, cell_spec(cell).name, "h0", H, I};
  rk_checks::shaped(w, h0, "h0", "", {B, H});
  if (has_c(cell)) rk_checks::tensor(w, c0, "c0", "", dt, {B, H});
  variant_weights(w, cell, dt, ws);
  rk_checks::lengths(fn, len, B, T);
  regularisers(w, dt, T, B, h_drop, zh, "zh", H, zc, "zc", H);
}

// dir_backward(cell, x, weights, lengths, reverse, h_drop, zh, zc, rh, rc, saved, dout, dh_n,
// dc_n, need_dx): H from dh_n (B, H); saved = what dir_forward returned after its first three
// outputs: sv (T, B, S), h_prev (T, B, H), h_in (T, B, H) with h_drop, c_prev (T, B, H) for
// the LSTM family, xhat (T, B, G) and rstd (T*B,) for the LayerNorm cells (empty otherwise).
inline void dir_backward_args(int64_t cell, const at::Tensor& x,
                              const std::vector<at::Tensor>& ws, const at::Tensor& len,
                              const at::Tensor& h_drop, const at::Tensor& zh,
                              const at::Tensor& zc, const std::vector<at::Tensor>& sv,
                              const at::Tensor& dout, const at::Tensor& dh_n,
                              const at::Tensor& dc_n) {
  const char* fn = "dir_backward";
  variant_cell(fn, cell);
  rk_checks::input(fn, x);
  const at::ScalarType dt = x.scalar_type();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2);
  const int64_t H = rk_checks::hidden_from(fn, dh_n, "dh_n", "(B, H)", 2, dt);
  const rk_checks::Where w{fn, cell_spec(cell).name, "dh_n", H, I};
  rk_checks::shaped(w, dh_n, "dh_n", "", {B, H});
  if (has_c(cell)) rk_checks::tensor(w, dc_n, "dc_n", "", dt, {B, H});
  variant_weights(w, cell, dt, ws);
  rk_checks::lengths(fn, len, B, T);
  regularisers(w, dt, T, B, h_drop, zh, "zh", H, zc, "zc", H);
  rk_checks::tensor(w, dout, "dout", "", dt, {T, B, H});
  TORCH_CHECK_VALUE(sv.size() == 6, fn, ": got ", sv.size(), " saved tensors, expected 6; "
                    "pass what dir_forward returned after its first three outputs");
  const int64_t G = gate_count(cell) * H;
  rk_checks::saved(w, sv[0], "saved rows", "", dt, {T, B, int64_t(save_width(cell, int(H)))});
  rk_checks::saved(w, sv[1], "h_prev", "", dt, {T, B, H});
  if (h_drop.numel()) rk_checks::saved(w, sv[2], "h_in", "", dt, {T, B, H});
  if (has_c(cell)) rk_checks::saved(w, sv[3], "c_prev", "", dt, {T, B, H});
  if (layer_norm(cell)) {
    rk_checks::saved(w, sv[4], "xhat", "", dt, {T, B, G});
    rk_checks::saved(w, sv[5], "rstd", "", dt, {T * B});
  }
}

// delays: sorted, distinct, each >= 1, one W_d per delay; the register is (B, K*H) with K the
// longest delay, and K*H must fit an int.
inline void skip_delays(const char* fn, const std::vector<int64_t>& delays) {
  TORCH_CHECK_VALUE(!delays.empty(), fn, ": delays is empty, expected at least one delay");
  for (size_t i = 0; i < delays.size(); ++i)
    TORCH_CHECK_VALUE(delays[i] >= 1 && (i == 0 || delays[i] > delays[i - 1]), fn,
                      ": delays[", i, "] is ", delays[i],
                      ", expected increasing delays of at least 1");
  TORCH_CHECK_VALUE(delays.back() <= INT_MAX / 16, fn, ": the longest delay ", delays.back(),
                    " is more than the engine's int sizes hold");
}

// H from the register reg (B, K*H): its width must be a multiple of K.
inline int64_t skip_hidden(const char* fn, const at::Tensor& reg, const char* name, int64_t K,
                           at::ScalarType dtype) {
  rk_checks::hidden_from(fn, reg, name, "(B, K*H) with K the longest delay", 2, dtype);
  const int64_t W = reg.size(1);
  TORCH_CHECK_VALUE(W % K == 0 && W <= INT_MAX / 2, fn, ": ", name, " has shape ",
                    rk_checks::shape_str(reg.sizes()), ", expected (B, K*H) with K = ", K,
                    " (the longest delay)");
  return W / K;
}

// The skip RNN's weights: weight_ih (H, I), one (H, H) per delay, bias_ih and bias_hh (H,)
// (both or neither).
inline void skip_weights(const rk_checks::Where& w, at::ScalarType dtype,
                         const std::vector<int64_t>& delays, const std::vector<at::Tensor>& ws) {
  const size_t nd = delays.size();
  TORCH_CHECK_VALUE(ws.size() == nd + 3, w.fn, ": got ", ws.size(), " weight tensors, expected ",
                    nd + 3, " (weight_ih, one weight_hh per delay, bias_ih, bias_hh; empty "
                    "biases for none) for ", nd, " delays");
  rk_checks::tensor(w, ws[0], "weight_ih", "", dtype, {w.H, w.I});
  for (size_t i = 0; i < nd; ++i) {  // named as the layer names them: weight_hh, weight_hh_d3
    const std::string name = delays[i] == 1 ? "weight_hh" : "weight_hh_d" +
                                                                std::to_string(delays[i]);
    rk_checks::tensor(w, ws[1 + i], name.c_str(), "", dtype, {w.H, w.H});
  }
  const bool has_ih = rk_checks::optional(w, ws[1 + nd], "bias_ih", "", dtype, {w.H});
  const bool has_hh = rk_checks::optional(w, ws[2 + nd], "bias_hh", "", dtype, {w.H});
  TORCH_CHECK_VALUE(has_ih == has_hh, w.fn, ": bias_ih is ", has_ih ? "given" : "empty",
                    " but bias_hh is ", has_hh ? "given" : "empty", ", expected both or neither");
}

// skip_forward(x, reg0, weights, delays, relu, lengths, reverse, h_drop, zh, zp, rh, rp, keep):
// reg0 (B, K*H); zh (T, B, H), zp (T, B, (K-1)*H).
inline void skip_forward_args(const at::Tensor& x, const at::Tensor& reg0,
                              const std::vector<at::Tensor>& ws,
                              const std::vector<int64_t>& delays, const at::Tensor& len,
                              const at::Tensor& h_drop, const at::Tensor& zh,
                              const at::Tensor& zp) {
  const char* fn = "skip_forward";
  rk_checks::input(fn, x);
  skip_delays(fn, delays);
  const at::ScalarType dt = x.scalar_type();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), K = delays.back();
  const int64_t H = skip_hidden(fn, reg0, "reg0", K, dt);
  const rk_checks::Where w{fn, "RNN_SKIP", "reg0", H, I};
  rk_checks::shaped(w, reg0, "reg0", "", {B, K * H});
  skip_weights(w, dt, delays, ws);
  rk_checks::lengths(fn, len, B, T);
  regularisers(w, dt, T, B, h_drop, zh, "zh", H, zp, "zp", (K - 1) * H);
}

// skip_backward(x, weights, delays, relu, lengths, reverse, h_drop, zh, zp, rh, rp, saved,
// dout, dreg_n, need_dx): H from dreg_n (B, K*H); saved = v (T, B, H), the register the
// products read (T, B, K*H); dout (T, B, H).
inline void skip_backward_args(const at::Tensor& x, const std::vector<at::Tensor>& ws,
                               const std::vector<int64_t>& delays, const at::Tensor& len,
                               const at::Tensor& h_drop, const at::Tensor& zh,
                               const at::Tensor& zp, const std::vector<at::Tensor>& sv,
                               const at::Tensor& dout, const at::Tensor& dreg_n) {
  const char* fn = "skip_backward";
  rk_checks::input(fn, x);
  skip_delays(fn, delays);
  const at::ScalarType dt = x.scalar_type();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), K = delays.back();
  const int64_t H = skip_hidden(fn, dreg_n, "dreg_n", K, dt);
  const rk_checks::Where w{fn, "RNN_SKIP", "dreg_n", H, I};
  rk_checks::shaped(w, dreg_n, "dreg_n", "", {B, K * H});
  skip_weights(w, dt, delays, ws);
  rk_checks::lengths(fn, len, B, T);
  regularisers(w, dt, T, B, h_drop, zh, "zh", H, zp, "zp", (K - 1) * H);
  rk_checks::tensor(w, dout, "dout", "", dt, {T, B, H});
  TORCH_CHECK_VALUE(sv.size() == 2, fn, ": got ", sv.size(), " saved tensors, expected 2; "
                    "pass what skip_forward returned after its first two outputs");
  rk_checks::saved(w, sv[0], "v", "", dt, {T, B, H});
  rk_checks::saved(w, sv[1], "register", "", dt, {T, B, K * H});
}
