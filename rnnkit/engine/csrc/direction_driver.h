// The per-direction drivers of the variant kernels (included by direction_kernels.cpp, inside its
// anonymous namespace): the backward's step loop around the elementwise passes and the
// parameter gradients, and the two entry points (the forward's loop: direction_forward.h).
// Weights `w` come in the cell's `param_specs` order, empty tensors for absent ones:
//   RNN/LSTM/GRU: w_ih, w_hh, b_ih, b_hh      peephole: + w_peephole (3H)   leaky: + rate_logit
//   LSTM_LN: w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, s_ih, s_hh, s_c
//   GRU_LN:  w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, s_ih, s_hh

// Saved by the forward for the backward: sv (T, B, S), hprev (T, B, H), h_in (T, B, H) or
// empty (no dropout), cprev (T, B, H) or empty, xhat (T, B, G) or empty, rstd_x (T*B) or empty.

// Column sums of a (rows, G) matrix into db (G), or added to it.
template <typename T>
void col_sum(const T* m, int64_t rows, int G, T* db, bool add = false) {
  if (!add) std::memset(db, 0, sizeof(T) * G);
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict row = m + r * G;
    for (int j = 0; j < G; ++j) db[j] += row[j];
  }
}

template <typename T>
void backward_impl(int64_t cell, const at::Tensor& x, const std::vector<at::Tensor>& w,
                   const int64_t* len, bool reverse, const at::Tensor& h_drop,
                   const at::Tensor& zh, const at::Tensor& zc, T rh, T rc,
                   const std::vector<at::Tensor>& sv, const at::Tensor& dout, at::Tensor& dh,
                   at::Tensor& dc, at::Tensor& dx, std::vector<at::Tensor>& grads) {
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2), Hn = dh.size(1);
  const int G = gate_count(cell) * Hn, S = save_width(cell, Hn);
  const int64_t TB = int64_t(Tn) * Bn, BH = int64_t(Bn) * Hn;
  const auto opt = x.options();
  const Table<T>& k = table<T>();
  const bool drop = h_drop.numel() > 0;
  at::Tensor dgx_t = pooled_empty({Tn, Bn, G}, opt);
  at::Tensor dgh_t = separate_uh(cell) ? pooled_empty({Tn, Bn, G}, opt) : dgx_t;
  std::vector<at::Tensor> dp;  // cell parameter gradients, VStep::dp order
  VStep<T> s{};
  std::vector<at::Tensor> extra;
  cell_params<T>(cell, w, G, s, extra, opt);
  if (cell == LSTM_PEEPHOLE) dp = {at::zeros({3, Hn}, opt)};
  if (cell == LSTM_LN) dp = {at::zeros({G}, opt), at::zeros({G}, opt), at::zeros({Hn}, opt),
                             at::zeros({Hn}, opt)};
  if (cell == GRU_LN) dp = {at::zeros({G}, opt), at::zeros({G}, opt), at::zeros({G}, opt)};
  if (cell == RNN_LEAKY_TANH || cell == RNN_LEAKY_RELU) dp = {at::zeros({Hn}, opt)};
  const GradParts<T> parts(dp, row_scratch_threads());  // the rows accumulate into these
  at::Tensor tmp_t = pooled_empty({row_scratch_threads() * 3 * Hn}, opt);
  at::Tensor back_t = drop ? pooled_empty({Bn, Hn}, opt) : at::Tensor();
  s.cell = cell; s.B = Bn; s.H = Hn; s.G = G; s.S = S; s.len = len;
  s.rh = rh; s.rc = rc;
  s.dh = dh.data_ptr<T>();
  s.dc = has_c(cell) ? dc.data_ptr<T>() : nullptr;
  s.tmp = tmp_t.data_ptr<T>();
  const T* w_hh = w[1].data_ptr<T>();
  const bool blocked = int64_t(Bn) * G * Hn < tuned.direction_own_step_macs;
  // W_hh (G, H) packed in panels for the register-blocked kernel
  const at::Tensor panels_t = blocked ? rk_common::pack_panels(table<T>().pack, G, Hn, w_hh, Hn,
                                                               false, opt)
                                       : at::Tensor();
  const T* panels = blocked ? panels_t.data_ptr<T>() : nullptr;
  auto at_step = [&](VStep<T>& st, int step) {  // pointers to the step's time
    const int t = reverse ? step : Tn - 1 - step;  // the forward's steps, last first
    st.t = t;
    st.sv = sv[0].data_ptr<T>() + int64_t(t) * Bn * S;
    st.hprev = sv[1].data_ptr<T>() + t * BH;
    st.cprev = st.dc ? sv[3].data_ptr<T>() + t * BH : nullptr;
    st.zh = zh.numel() ? zh.data_ptr<uint8_t>() + t * BH : nullptr;
    st.zc = zc.numel() ? zc.data_ptr<uint8_t>() + t * BH : nullptr;
    st.dout = dout.data_ptr<T>() + t * BH;
    st.dgx = dgx_t.data_ptr<T>() + int64_t(t) * Bn * G;
    st.dgh = dgh_t.data_ptr<T>() + int64_t(t) * Bn * G;
  };
  // dh_prev (+)= dG_h W_hh, columns [c0, c0 + n) of H: through uh = h_prev W_hh^T, or with
  // recurrent dropout through uh = (h_prev * h_drop) W_hh^T.
  auto blocked_dh = [&](const VStep<T>& st, int c0, int n) {
    const T* mp = panels + int64_t(c0) * G;
    if (!drop) {
      table<T>().mm_packed(Bn, G, n, st.dgh, G, mp, st.dh + c0, Hn, true, nullptr);
      return;
    }
    T* back = back_t.data_ptr<T>();
    table<T>().mm_packed(Bn, G, n, st.dgh, G, mp, back + c0, Hn, false, nullptr);
    const T* m = h_drop.data_ptr<T>();
    for (int b = 0; b < Bn; ++b) {
      const int64_t r = int64_t(b) * Hn;
      for (int j = c0; j < c0 + n; ++j) st.dh[r + j] += back[r + j] * m[r + j];
    }
  };
  // The parameter gradients of rows [r0, r0 + rows) of the (T, B, *) buffers (the first part
  // overwrites, later ones add): dW_hh, the biases (from dG before the x-side LayerNorm's
  // backward turns dG_x into dL/d(x W_ih^T)), dW_ih, dx. A whole call makes it once, its
  // products on oneDNN where faster; the pipelined loop below, a chunk at a time, on BLAS.
  T* dgx = dgx_t.data_ptr<T>();
  T* dgh = dgh_t.data_ptr<T>();
  const bool bias = w[2].numel() > 0;
  std::vector<at::Tensor> g(w.size());
  for (size_t i = 0; i < w.size(); ++i) g[i] = at::empty({0}, opt);
  g[0] = at::empty_like(w[0]);
  g[1] = at::empty_like(w[1]);
  if (bias) g[2] = at::empty_like(w[2]);
  if (bias && cell != GRU_LN) g[3] = at::empty_like(w[3]);
  at::Tensor dg_ih, ds_ih;  // the x-side LayerNorm's gain and shift
  if (layer_norm(cell)) dg_ih = at::zeros({G}, opt), ds_ih = at::zeros({G}, opt);
  const T* hin = drop ? sv[2].data_ptr<T>() : sv[1].data_ptr<T>();
  const int64_t call_macs = TB * G * (In + Hn);
  auto grads_part = [&](int64_t r0, int64_t rows, bool first, bool whole) {
    auto product = [&](bool ta, int m, int n, int kk, const T* a, int lda, const T* b, int ldb,
                       T beta, T* c, int ldc) {
      if (whole)
        onednn::big_gemm(ta, false, m, n, kk, a, lda, b, ldb, beta, c, ldc, call_macs);
      else
        gemm(ta, false, m, n, kk, a, lda, b, ldb, beta, c, ldc);
    };
    const T beta = first ? T(0) : T(1);
    T* dgx_r = dgx + r0 * G;
    const T* dgh_r = dgh + r0 * G;
    product(true, G, Hn, int(rows), dgh_r, G, hin + r0 * Hn, Hn, beta, g[1].data_ptr<T>(), Hn);
    if (bias) {  // db_ih = sum dG_x; db_hh = sum dG_h (GRU) or sum dG_x (where b_hh folds in)
      col_sum(dgx_r, rows, G, g[2].data_ptr<T>(), !first);
      if (cell != GRU_LN)
        col_sum(cell == GRU ? dgh_r : dgx_r, rows, G, g[3].data_ptr<T>(), !first);
    }
    if (layer_norm(cell))  // dG_x -> dL/d(x W_ih^T) through the x-side LayerNorm
      k.lnx_bwd(rows, G, dgx_r, sv[4].data_ptr<T>() + r0 * G, sv[5].data_ptr<T>() + r0,
                w[4].data_ptr<T>(), dg_ih.data_ptr<T>(), ds_ih.data_ptr<T>());
    product(true, G, In, int(rows), dgx_r, G, x.data_ptr<T>() + r0 * In, In, beta,
            g[0].data_ptr<T>(), In);
    if (dx.numel())  // dx = dG_x W_ih: through xp = x W_ih^T
      product(false, int(rows), In, G, dgx_r, G, w[0].data_ptr<T>(), In, T(0),
              dx.data_ptr<T>() + r0 * In, In);
  };
  // One step on the calling thread: the row pass, then dh_prev (+)= dG_h W_hh.
  auto serial_step = [&](VStep<T>& st) {
    backward_rows(st, tmp_t.data_ptr<T>(), parts);
    if (drop) {  // dh_prev += (dG_h W_hh) * h_drop: through uh = (h_prev * h_drop) W_hh^T
      T* back = back_t.data_ptr<T>();
      if (blocked)
        own_mm_packed<T>(Bn, G, Hn, st.dgh, G, panels, back, Hn, false);
      else
        gemm(false, false, Bn, Hn, G, st.dgh, G, w_hh, Hn, T(0), back, Hn);
      const T* m = h_drop.data_ptr<T>();
      for (int64_t j = 0; j < BH; ++j) st.dh[j] += back[j] * m[j];
    } else {     // dh_prev += dG_h W_hh: through uh = h_prev W_hh^T
      if (blocked)
        own_mm_packed<T>(Bn, G, Hn, st.dgh, G, panels, st.dh, Hn, true);
      else
        gemm(false, false, Bn, Hn, G, st.dgh, G, w_hh, Hn, T(1), st.dh, Hn);
    }
  };
  const int team = variant_team<T>(Bn, G, Hn, Tn, blocked);
  const int split = team > 1 ? 1 : variant_split<T>(Bn, G, Hn, Tn);
  // Steps small enough for one thread (the product and the row pass each below the sizes that
  // split them), given two chunks at least, pipeline the parameter gradients.
  const bool pipelined = team == 1 && split == 1 && tuned.pipeline_rows > 0 && Tn >= 4 &&
                         TB >= 2 * tuned.pipeline_rows && blocked &&
                         int64_t(Bn) * G * Hn < tuned.parallel_step_macs &&
                         int64_t(Bn) * G < tuned.direction_parallel_row_elems &&
                         at::get_num_threads() >= 2 && !at::in_parallel_region() &&
                         !rk_common::contended();
  if (split > 1) {  // as the forward's split: each thread every step of its own rows
    rk_common::SplitWatch watch;  // a busy neighbour (contention.h)
    at::parallel_for(0, split, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t started = rk_common::now_us();
        const int b0 = int(Bn * p / split), b1 = int(Bn * (p + 1) / split), rows = b1 - b0;
        const int64_t r0 = int64_t(b0) * Hn, n = int64_t(rows) * Hn;
        T* tmp = tmp_t.data_ptr<T>() + p * 3 * Hn;
        T* own_dp[4] = {nullptr, nullptr, nullptr, nullptr};
        parts.pointers(int(p), own_dp);
        const bool own = int64_t(rows) * G * Hn < tuned.direction_own_step_macs;
        VStep<T> st = s;
        for (int step = 0; step < Tn; ++step) {
          at_step(st, step);
          table<T>().bwd(backward_rows_from(st, b0, b1, tmp, own_dp));
          const T* dg = st.dgh + int64_t(b0) * G;
          T* dst = drop ? back_t.data_ptr<T>() + r0 : st.dh + r0;  // dG_h W_hh, own rows
          if (blocked)
            table<T>().mm_packed(rows, G, Hn, dg, G, panels, dst, Hn, !drop, nullptr);
          else if (own)
            table<T>().mm(rows, G, Hn, dg, G, w_hh, Hn, dst, Hn, !drop);
          else
            gemm(false, false, rows, Hn, G, dg, G, w_hh, Hn, drop ? T(0) : T(1), dst, Hn);
          if (drop) {  // dh_prev += (dG_h W_hh) * h_drop
            const T* m = h_drop.data_ptr<T>();
            for (int64_t j = r0; j < r0 + n; ++j) st.dh[j] += back_t.data_ptr<T>()[j] * m[j];
          }
        }
        watch.finished(int(p), rows, started);
      }
    });
  } else if (team > 1) {  // as the forward's team: rows by batch rows, the product by columns
    rk_common::run_team(team, [&](int p, int threads, rk_common::SpinBarrier& barrier) {
      const int b0 = Bn * p / threads, b1 = Bn * (p + 1) / threads;
      const rk_common::UnitSlice cols =
          rk_common::unit_slice(Hn, p, threads, table<T>().pack_width);  // whole panels
      T* tmp = tmp_t.data_ptr<T>() + int64_t(p) * 3 * Hn;
      T* own_dp[4] = {nullptr, nullptr, nullptr, nullptr};
      parts.pointers(p, own_dp);
      VStep<T> st = s;
      for (int step = 0; step < Tn; ++step) {
        at_step(st, step);
        if (b1 > b0) table<T>().bwd(backward_rows_from(st, b0, b1, tmp, own_dp));
        barrier.wait(threads);  // the whole dG before the product
        if (cols.n > 0) blocked_dh(st, cols.u0, cols.n);
        barrier.wait(threads);  // the whole dh before the next rows
      }
    });
  } else if (pipelined) {
    // As the layer kernels' pipelined backward (rk_common::run_pipelined).
    rk_common::run_pipelined(
        Tn, std::max(1, int(tuned.pipeline_rows / Bn)),
        [&](int step) {
          at_step(s, step);
          serial_step(s);
        },
        [&](int s0, int s1) {
          const int t0 = reverse ? s0 : Tn - s1;  // the chunk's first time index
          grads_part(int64_t(t0) * Bn, int64_t(s1 - s0) * Bn, s0 == 0, false);
        });
  } else {
    for (int step = 0; step < Tn; ++step) {
      at_step(s, step);
      serial_step(s);
    }
  }
  if (!pipelined) grads_part(0, TB, true, true);
  parts.finish(dp);
  if (bias && cell == GRU_LN) g[3] = dp[0];
  if (layer_norm(cell)) {
    const int gs = cell == LSTM_LN ? 7 : 6;  // position of s_ih in w
    g[4] = dg_ih;
    if (w[gs].numel()) g[gs] = ds_ih;
    if (cell == LSTM_LN) {
      g[5] = dp[0]; g[6] = dp[2];
      if (bias) { g[8] = dp[1]; g[9] = dp[3]; }
    } else {
      g[5] = dp[1];
      if (bias) g[7] = dp[2];
    }
  }
  if (cell == LSTM_PEEPHOLE) g[4] = dp[0];
  if (cell == RNN_LEAKY_TANH || cell == RNN_LEAKY_RELU)  // through a = sigmoid(rate_logit)
    g[4] = dp[0] * extra.back() * (1 - extra.back());
  grads.insert(grads.end(), g.begin(), g.end());
}

// Forward of one direction. x (T, B, I); h0, c0 (B, H) (c0 empty outside the LSTM family);
// lengths (B) int64 or empty; h_drop (B, H) or empty; zh, zc (T, B, H) uint8 masks or empty;
// rh, rc evaluation zoneout rates. Returns out (T, B, H), h_n, c_n, then the saved tensors.
std::vector<at::Tensor> dir_forward(int64_t cell, const at::Tensor& x_in, const at::Tensor& h0,
                                    const at::Tensor& c0, const std::vector<at::Tensor>& w_in,
                                    const at::Tensor& len_in, bool reverse,
                                    const at::Tensor& drop_in, const at::Tensor& zh_in,
                                    const at::Tensor& zc_in, double rh, double rc, bool keep) {
  dir_forward_args(cell, x_in, h0, c0, w_in, len_in, drop_in, zh_in, zc_in);  // before pointers
  const at::Tensor x = x_in.contiguous(), lengths = len_in.contiguous();
  const at::Tensor h_drop = drop_in.contiguous(), zh = zh_in.contiguous(), zc = zc_in.contiguous();
  const std::vector<at::Tensor> w = rk_checks::dense(w_in);
  rk_common::init_threads();
  at::NoGradGuard no_grad;
  const int Tn = x.size(0), Bn = x.size(1), Hn = h0.size(1);
  auto opt = x.options();
  at::Tensor out = pooled_empty({Tn, Bn, Hn}, opt);
  at::Tensor h = h0.clone(at::MemoryFormat::Contiguous);
  at::Tensor c = has_c(cell) ? c0.clone(at::MemoryFormat::Contiguous) : at::empty({0}, opt);
  std::vector<at::Tensor> res{out, h, c};
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  BlasThreads threads(int64_t(Tn) * Bn * gate_count(cell) * Hn * (x.size(2) + Hn),
                      tuned.serial_layer_macs);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_variant_forward", [&] {
    forward_impl<scalar_t>(cell, x, h, c, w, len, reverse, h_drop, zh, zc, scalar_t(rh),
                           scalar_t(rc), keep, out, res);
  });
  return res;
}

// Backward of one direction: saved = what dir_forward returned after (out, h_n, c_n).
// Returns dx (empty unless need_dx), dh0, dc0, then one gradient per entry of w (empty where
// the entry is).
std::vector<at::Tensor> dir_backward(int64_t cell, const at::Tensor& x_in,
                                     const std::vector<at::Tensor>& w_in,
                                     const at::Tensor& len_in, bool reverse,
                                     const at::Tensor& drop_in, const at::Tensor& zh_in,
                                     const at::Tensor& zc_in, double rh, double rc,
                                     const std::vector<at::Tensor>& saved,
                                     const at::Tensor& dout, const at::Tensor& dh_n,
                                     const at::Tensor& dc_n, bool need_dx) {
  dir_backward_args(cell, x_in, w_in, len_in, drop_in, zh_in, zc_in, saved, dout, dh_n, dc_n);
  const at::Tensor x = x_in.contiguous(), lengths = len_in.contiguous();
  const at::Tensor h_drop = drop_in.contiguous(), zh = zh_in.contiguous(), zc = zc_in.contiguous();
  const std::vector<at::Tensor> w = rk_checks::dense(w_in);
  rk_common::init_threads();
  at::NoGradGuard no_grad;
  auto opt = x.options();
  at::Tensor dh = dh_n.clone(at::MemoryFormat::Contiguous);
  at::Tensor dc = has_c(cell) ? dc_n.clone(at::MemoryFormat::Contiguous) : at::empty({0}, opt);
  at::Tensor dx = need_dx ? at::empty_like(x) : at::empty({0}, opt);
  at::Tensor d_out = dout.contiguous();
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{dx, dh, dc};
  BlasThreads threads(3 * x.size(0) * x.size(1) * gate_count(cell) * dh.size(1) *
                      (x.size(2) + dh.size(1)), tuned.serial_layer_macs);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_variant_backward", [&] {
    backward_impl<scalar_t>(cell, x, w, len, reverse, h_drop, zh, zc, scalar_t(rh),
                            scalar_t(rc), saved, d_out, dh, dc, dx, res);
  });
  return res;
}
