// The per-direction drivers of the skip RNN (included by direction_kernels.cpp inside its anonymous
// namespace, after direction_driver.h). Weights: w_ih (H, I), one W_d (H, H) per delay d (sorted),
// b_ih, b_hh (empty without bias). State: the register reg = [h, past] (B, K*H), K = max delay.
//
// Forward, per step: a = xp[t] + sum_d (reg_d * h_drop) W_d^T, one step product per delay reading
// the register block of h_{t-d} in place (leading dimension K*H); then the elementwise pass.
// Backward: the elementwise pass, then dreg_d += (da W_d) * h_drop per delay; the weight
// gradients dW_d = da^T reg_d as GEMMs over all T*B rows at the end.

template <typename T>
void skip_forward_impl(const at::Tensor& x, at::Tensor& reg, const std::vector<at::Tensor>& w,
                       const std::vector<int64_t>& delays, bool relu, const int64_t* len,
                       bool reverse, const at::Tensor& h_drop, const at::Tensor& zh,
                       const at::Tensor& zp, T rh, T rp, bool keep, at::Tensor& out,
                       std::vector<at::Tensor>& res) {
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2), Hn = out.size(2);
  const int nd = int(delays.size()), K = int(delays.back()), W = K * Hn;
  const int64_t TB = int64_t(Tn) * Bn, BH = int64_t(Bn) * Hn, BW = int64_t(Bn) * W;
  const auto opt = x.options();
  const T* b_ih = ptr<T>(w[1 + nd]);
  const T* b_hh = ptr<T>(w[2 + nd]);
  at::Tensor xp_t = pooled_empty({Tn, Bn, Hn}, opt);  // xp = x W_ih^T + b_ih + b_hh  (T, B, H)
  T* xp = xp_t.data_ptr<T>();
  std::vector<T> bias(Hn, T(0));
  for (int j = 0; j < Hn; ++j) bias[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  for (int64_t r = 0; r < TB; ++r) std::memcpy(xp + r * Hn, bias.data(), sizeof(T) * Hn);
  const int64_t call_macs = TB * Hn * (In + int64_t(nd) * Hn);  // oneDNN or BLAS (onednn.h)
  onednn::big_gemm(false, true, int(TB), Hn, In, x.data_ptr<T>(), In, w[0].data_ptr<T>(), In,
                   T(1), xp, Hn, call_macs);
  const bool drop = h_drop.numel() > 0;
  at::Tensor v_t = pooled_empty({keep ? Tn : 1, Bn, Hn}, opt);
  at::Tensor src_t = (keep || drop) ? at::empty({keep ? Tn : 1, Bn, W}, opt) : at::empty({0}, opt);
  at::Tensor tmp_t = pooled_empty({W}, opt);
  SkipStep<T> s{};
  s.B = Bn; s.H = Hn; s.K = K; s.relu = relu; s.len = len; s.rh = rh; s.rp = rp;
  s.reg = reg.data_ptr<T>();
  s.tmp = tmp_t.data_ptr<T>();
  const SkipTable<T>& k = skip_table<T>();
  std::vector<at::Tensor> wts;  // W_d^T (H, H): the step products' rows
  for (int i = 0; i < nd; ++i) wts.push_back(w[1 + i].t().contiguous());
  for (int step = 0; step < Tn; ++step) {
    const int t = reverse ? Tn - 1 - step : step;
    const int64_t kt = keep ? t : 0;
    s.t = t;
    s.a = xp + t * BH;
    s.out = out.data_ptr<T>() + t * BH;
    s.v = v_t.data_ptr<T>() + kt * BH;
    s.zh = zh.numel() ? zh.data_ptr<uint8_t>() + t * BH : nullptr;
    s.zp = zp.numel() ? zp.data_ptr<uint8_t>() + t * (BW - BH) : nullptr;
    const T* src = s.reg;  // the register the products read: reg, or reg * h_drop per block
    if (keep || drop) {
      T* dst = src_t.data_ptr<T>() + kt * BW;
      std::memcpy(dst, s.reg, sizeof(T) * BW);
      if (drop) {
        const T* m = h_drop.data_ptr<T>();
        for (int b = 0; b < Bn; ++b)
          for (int blk = 0; blk < K; ++blk)
            for (int j = 0; j < Hn; ++j) dst[int64_t(b) * W + blk * Hn + j] *= m[b * Hn + j];
      }
      src = dst;
    }
    for (int i = 0; i < nd; ++i)  // a += h_{t-d} W_d^T, h_{t-d} = register block d - 1
      own_mm<T>(Bn, Hn, Hn, src + (delays[i] - 1) * Hn, W, wts[i].data_ptr<T>(), s.a, Hn,
                    true);
    k.fwd(s);
  }
  if (keep) res.insert(res.end(), {v_t, src_t});
}

template <typename T>
void skip_backward_impl(const at::Tensor& x, const std::vector<at::Tensor>& w,
                        const std::vector<int64_t>& delays, bool relu, const int64_t* len,
                        bool reverse, const at::Tensor& h_drop, const at::Tensor& zh,
                        const at::Tensor& zp, T rh, T rp, const std::vector<at::Tensor>& saved,
                        const at::Tensor& dout, at::Tensor& dreg, at::Tensor& dx,
                        std::vector<at::Tensor>& grads) {
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2), Hn = w[0].size(0);
  const int nd = int(delays.size()), K = int(delays.back()), W = K * Hn;
  const int64_t TB = int64_t(Tn) * Bn, BH = int64_t(Bn) * Hn, BW = int64_t(Bn) * W;
  const auto opt = x.options();
  const bool drop = h_drop.numel() > 0;
  at::Tensor da_t = pooled_empty({Tn, Bn, Hn}, opt);
  at::Tensor tmp_t = pooled_empty({W}, opt);
  at::Tensor back_t = pooled_empty({Bn, Hn}, opt);
  SkipStep<T> s{};
  s.B = Bn; s.H = Hn; s.K = K; s.relu = relu; s.len = len; s.rh = rh; s.rp = rp;
  s.dreg = dreg.data_ptr<T>();
  s.tmp = tmp_t.data_ptr<T>();
  const SkipTable<T>& k = skip_table<T>();
  {
    for (int step = 0; step < Tn; ++step) {
      const int t = reverse ? step : Tn - 1 - step;  // the forward's steps, last first
      s.t = t;
      s.v = saved[0].data_ptr<T>() + t * BH;
      s.zh = zh.numel() ? zh.data_ptr<uint8_t>() + t * BH : nullptr;
      s.zp = zp.numel() ? zp.data_ptr<uint8_t>() + t * (BW - BH) : nullptr;
      s.dout = dout.data_ptr<T>() + t * BH;
      s.da = da_t.data_ptr<T>() + t * BH;
      k.bwd(s);
      for (int i = 0; i < nd; ++i) {  // dreg_d += (da W_d) * h_drop: through a += h_{t-d} W_d^T
        T* dst = s.dreg + (delays[i] - 1) * Hn;
        if (!drop) {
          own_mm<T>(Bn, Hn, Hn, s.da, Hn, w[1 + i].data_ptr<T>(), dst, W, true);
          continue;
        }
        T* back = back_t.data_ptr<T>();
        own_mm<T>(Bn, Hn, Hn, s.da, Hn, w[1 + i].data_ptr<T>(), back, Hn, false);
        const T* m = h_drop.data_ptr<T>();
        for (int b = 0; b < Bn; ++b)
          for (int j = 0; j < Hn; ++j) dst[int64_t(b) * W + j] += back[b * Hn + j] * m[b * Hn + j];
      }
    }
  }
  const T* da = da_t.data_ptr<T>();
  std::vector<at::Tensor> g(w.size());
  for (size_t i = 0; i < w.size(); ++i) g[i] = at::empty({0}, opt);
  const int64_t call_macs = TB * Hn * (In + int64_t(nd) * Hn);  // oneDNN or BLAS (onednn.h)
  for (int i = 0; i < nd; ++i) {  // dW_d = da^T h_{t-d}, over every step and row
    g[1 + i] = at::empty_like(w[1 + i]);
    onednn::big_gemm(true, false, Hn, Hn, int(TB), da, Hn,
                     saved[1].data_ptr<T>() + (delays[i] - 1) * Hn, W, T(0),
                     g[1 + i].data_ptr<T>(), Hn, call_macs);
  }
  if (w[1 + nd].numel()) {  // db_ih = db_hh = sum da
    g[1 + nd] = at::empty_like(w[1 + nd]);
    col_sum(da, TB, Hn, g[1 + nd].data_ptr<T>());
    g[2 + nd] = g[1 + nd].clone();
  }
  g[0] = at::empty_like(w[0]);  // dW_ih = da^T x
  onednn::big_gemm(true, false, Hn, In, int(TB), da, Hn, x.data_ptr<T>(), In, T(0),
                   g[0].data_ptr<T>(), In, call_macs);
  if (dx.numel())  // dx = da W_ih
    onednn::big_gemm(false, false, int(TB), In, Hn, da, Hn, w[0].data_ptr<T>(), In, T(0),
                     dx.data_ptr<T>(), In, call_macs);
  grads.insert(grads.end(), g.begin(), g.end());
}

// Forward of one direction: reg0 (B, K*H) = [h0, past0]; returns out (T, B, H), reg_n
// (B, K*H), then the saved tensors (keep).
std::vector<at::Tensor> skip_forward(const at::Tensor& x_in, const at::Tensor& reg0,
                                     const std::vector<at::Tensor>& w_in,
                                     const std::vector<int64_t>& delays, bool relu,
                                     const at::Tensor& len_in, bool reverse,
                                     const at::Tensor& drop_in, const at::Tensor& zh_in,
                                     const at::Tensor& zp_in, double rh, double rp, bool keep) {
  skip_forward_args(x_in, reg0, w_in, delays, len_in, drop_in, zh_in, zp_in);  // before pointers
  const at::Tensor x = x_in.contiguous(), lengths = len_in.contiguous();
  const at::Tensor h_drop = drop_in.contiguous(), zh = zh_in.contiguous(), zp = zp_in.contiguous();
  const std::vector<at::Tensor> w = rk_checks::dense(w_in);
  rk_common::init_threads();
  at::NoGradGuard no_grad;
  at::Tensor out = pooled_empty({x.size(0), x.size(1), w[0].size(0)}, x.options());
  at::Tensor reg = reg0.clone(at::MemoryFormat::Contiguous);
  std::vector<at::Tensor> res{out, reg};
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_skip_forward", [&] {
    skip_forward_impl<scalar_t>(x, reg, w, delays, relu, len, reverse, h_drop, zh, zp,
                                scalar_t(rh), scalar_t(rp), keep, out, res);
  });
  return res;
}

// Backward of one direction: saved = what skip_forward returned after (out, reg_n). Returns
// dx (empty unless need_dx), dreg0 (B, K*H), then one gradient per entry of w.
std::vector<at::Tensor> skip_backward(const at::Tensor& x_in,
                                      const std::vector<at::Tensor>& w_in,
                                      const std::vector<int64_t>& delays, bool relu,
                                      const at::Tensor& len_in, bool reverse,
                                      const at::Tensor& drop_in, const at::Tensor& zh_in,
                                      const at::Tensor& zp_in, double rh, double rp,
                                      const std::vector<at::Tensor>& saved,
                                      const at::Tensor& dout, const at::Tensor& dreg_n,
                                      bool need_dx) {
  skip_backward_args(x_in, w_in, delays, len_in, drop_in, zh_in, zp_in, saved, dout, dreg_n);
  const at::Tensor x = x_in.contiguous(), lengths = len_in.contiguous();
  const at::Tensor h_drop = drop_in.contiguous(), zh = zh_in.contiguous(), zp = zp_in.contiguous();
  const std::vector<at::Tensor> w = rk_checks::dense(w_in);
  rk_common::init_threads();
  at::NoGradGuard no_grad;
  at::Tensor dreg = dreg_n.clone(at::MemoryFormat::Contiguous);
  at::Tensor dx = need_dx ? at::empty_like(x) : at::empty({0}, x.options());
  at::Tensor d_out = dout.contiguous();
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{dx, dreg};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_skip_backward", [&] {
    skip_backward_impl<scalar_t>(x, w, delays, relu, len, reverse, h_drop, zh, zp,
                                 scalar_t(rh), scalar_t(rp), saved, d_out, dreg, dx, res);
  });
  return res;
}
