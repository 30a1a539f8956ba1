// A direction's forward in the variant kernels (included by direction_kernels.cpp, inside its
// anonymous namespace): the input GEMM, then the step loop around the elementwise passes (one
// thread, split by batch rows, or on a team). Weights `w` come in the cell's `param_specs`
// order (direction_driver.h).

template <typename T>
void forward_impl(int64_t cell, const at::Tensor& x, at::Tensor& h, at::Tensor& c,
                  const std::vector<at::Tensor>& w, const int64_t* len, bool reverse,
                  const at::Tensor& h_drop, const at::Tensor& zh, const at::Tensor& zc, T rh,
                  T rc, bool keep, at::Tensor& out, std::vector<at::Tensor>& res) {
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2), Hn = h.size(1);
  const int G = gate_count(cell) * Hn, S = save_width(cell, Hn);
  const int64_t TB = int64_t(Tn) * Bn;
  const auto opt = x.options();
  const Table<T>& k = table<T>();
  const int64_t call_macs = TB * G * (In + Hn);  // oneDNN or BLAS (onednn.h)
  const T* b_ih = ptr<T>(w[2]);
  const T* b_hh = ptr<T>(w[3]);
  // xp = x W_ih^T + b_ih (+ b_hh where it folds), or LN(x W_ih^T) g + s + b.  (T, B, G)
  at::Tensor xp_t = pooled_empty({Tn, Bn, G}, opt), xhat_t, rstd_t;
  T* xp = xp_t.data_ptr<T>();
  if (layer_norm(cell)) {
    onednn::big_gemm(false, true, int(TB), G, In, x.data_ptr<T>(), In, w[0].data_ptr<T>(), In,
                     T(0), xp, G, call_macs);
    xhat_t = pooled_empty({Tn, Bn, G}, opt);
    rstd_t = pooled_empty({TB}, opt);
    const T* s_ih = ptr<T>(w[cell == LSTM_LN ? 7 : 6]);
    k.lnx_fwd(TB, G, xp, xhat_t.data_ptr<T>(), rstd_t.data_ptr<T>(), w[4].data_ptr<T>(), s_ih,
              b_ih, cell == LSTM_LN ? b_hh : nullptr);
  } else {
    std::vector<T> bias(G, T(0));  // b_ih (+ b_hh where it folds in), then copied to every row
    for (int j = 0; j < G; ++j)
      bias[j] = (b_ih ? b_ih[j] : T(0)) + (cell != GRU && b_hh ? b_hh[j] : T(0));
    for (int64_t r = 0; r < TB; ++r) std::memcpy(xp + r * G, bias.data(), sizeof(T) * G);
    onednn::big_gemm(false, true, int(TB), G, In, x.data_ptr<T>(), In, w[0].data_ptr<T>(), In,
                     T(1), xp, G, call_macs);
  }
  VStep<T> s{};
  std::vector<at::Tensor> extra;
  cell_params<T>(cell, w, G, s, extra, opt);
  s.cell = cell; s.B = Bn; s.H = Hn; s.G = G; s.S = S; s.len = len;
  s.h = h.data_ptr<T>();
  s.c = has_c(cell) ? c.data_ptr<T>() : nullptr;
  s.rh = rh; s.rc = rc;
  const bool drop = h_drop.numel() > 0;
  at::Tensor sv_t = pooled_empty({keep ? Tn : 1, Bn, S}, opt);
  at::Tensor hprev_t = keep ? pooled_empty({Tn, Bn, Hn}, opt) : at::empty({0}, opt);
  at::Tensor cprev_t = keep && s.c ? pooled_empty({Tn, Bn, Hn}, opt) : at::empty({0}, opt);
  at::Tensor hin_t = drop ? pooled_empty({keep ? Tn : 1, Bn, Hn}, opt) : at::empty({0}, opt);
  at::Tensor uh_t = separate_uh(cell) ? pooled_empty({Bn, G}, opt) : at::Tensor();
  at::Tensor tmp_t = pooled_empty({row_scratch_threads() * 3 * Hn}, opt);
  s.uh = separate_uh(cell) ? uh_t.data_ptr<T>() : nullptr;
  s.tmp = tmp_t.data_ptr<T>();
  const int64_t BH = int64_t(Bn) * Hn;
  // W_hh^T (H, G) as the step product reads it: packed in panels for the register-blocked
  // kernel, row-major for BLAS (a split's slices of rows may still take the kernel)
  const bool blocked = int64_t(Bn) * G * Hn < tuned.direction_own_step_macs;
  const at::Tensor panels_t =
      blocked ? rk_common::pack_panels(table<T>().pack, Hn, G, w[1].data_ptr<T>(), Hn, true, opt)
              : at::Tensor();
  const at::Tensor wt_t = blocked ? at::Tensor() : w[1].t().contiguous();
  const T* panels = blocked ? panels_t.data_ptr<T>() : nullptr;
  const T* wt = blocked ? nullptr : wt_t.data_ptr<T>();
  // One step in pieces over rows [b0, b1) or columns [c0, c1), so that the serial loop and a
  // thread team (variant_team) share them.
  auto at_step = [&](VStep<T>& st, int step) {  // pointers to the step's time
    const int t = reverse ? Tn - 1 - step : step;
    const int64_t kt = keep ? t : 0;
    st.t = t;
    st.a = xp + int64_t(t) * Bn * G;
    st.out = out.data_ptr<T>() + t * BH;
    st.sv = sv_t.data_ptr<T>() + kt * Bn * S;
    st.zh = zh.numel() ? zh.data_ptr<uint8_t>() + t * BH : nullptr;
    st.zc = zc.numel() ? zc.data_ptr<uint8_t>() + t * BH : nullptr;
    return drop ? hin_t.data_ptr<T>() + kt * BH : s.h;  // the step's h_in
  };
  auto state_rows = [&](const VStep<T>& st, T* hin, int b0, int b1) {
    const int64_t r0 = int64_t(b0) * Hn, n = int64_t(b1 - b0) * Hn;
    if (keep) {
      std::memcpy(hprev_t.data_ptr<T>() + st.t * BH + r0, st.h + r0, sizeof(T) * n);
      if (st.c) std::memcpy(cprev_t.data_ptr<T>() + st.t * BH + r0, st.c + r0, sizeof(T) * n);
    }
    if (drop) {  // h_in = h * h_drop: the recurrent dropout mask, one per sequence
      const T* m = h_drop.data_ptr<T>();
      for (int64_t j = r0; j < r0 + n; ++j) hin[j] = st.h[j] * m[j];
    }
  };
  // uh = h_in W_hh^T, or xp[t] += h_in W_hh^T where the two sides fold together
  auto product_dst = [&](const VStep<T>& st) {
    return st.uh ? const_cast<T*>(st.uh) : const_cast<T*>(st.a);
  };
  const int team = variant_team<T>(Bn, G, Hn, Tn, blocked);
  const int split = team > 1 ? 1 : variant_split<T>(Bn, G, Hn, Tn);
  if (split > 1) {  // each thread: every step of its own rows (variant_split)
    rk_common::SplitWatch watch;  // a busy neighbour (contention.h)
    at::parallel_for(0, split, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t started = rk_common::now_us();
        const int b0 = int(Bn * p / split), b1 = int(Bn * (p + 1) / split), rows = b1 - b0;
        T* tmp = tmp_t.data_ptr<T>() + p * 3 * Hn;
        VStep<T> st = s;
        for (int step = 0; step < Tn; ++step) {
          T* hin = at_step(st, step);
          state_rows(st, hin, b0, b1);
          T* dst = product_dst(st) + int64_t(b0) * G;
          if (blocked)
            table<T>().mm_packed(rows, Hn, G, hin + int64_t(b0) * Hn, Hn, panels, dst, G,
                                 !st.uh, nullptr);
          else if (int64_t(rows) * G * Hn < tuned.direction_own_step_macs)
            table<T>().mm(rows, Hn, G, hin + int64_t(b0) * Hn, Hn, wt, G, dst, G, !st.uh);
          else
            gemm(false, false, rows, G, Hn, hin + int64_t(b0) * Hn, Hn, wt, G,
                 st.uh ? T(0) : T(1), dst, G);
          table<T>().fwd(forward_rows_from(st, b0, b1, tmp));
        }
        watch.finished(int(p), rows, started);
      }
    });
  } else if (team > 1) {
    rk_common::run_team(team, [&](int p, int threads, rk_common::SpinBarrier& barrier) {
      const int b0 = Bn * p / threads, b1 = Bn * (p + 1) / threads;
      const rk_common::UnitSlice cols =  // whole panels each
          rk_common::unit_slice(G, p, threads, table<T>().pack_width);
      T* tmp = tmp_t.data_ptr<T>() + int64_t(p) * 3 * Hn;
      VStep<T> st = s;
      for (int step = 0; step < Tn; ++step) {
        T* hin = at_step(st, step);
        state_rows(st, hin, b0, b1);
        if (drop) barrier.wait(threads);  // every row of h_in before the product
        table<T>().mm_packed(Bn, Hn, cols.n, hin, Hn, panels + int64_t(cols.u0) * Hn,
                             product_dst(st) + cols.u0, G, !st.uh, nullptr);
        barrier.wait(threads);  // the whole product before the rows
        if (b1 > b0) table<T>().fwd(forward_rows_from(st, b0, b1, tmp));
        barrier.wait(threads);  // the whole new state before the next product
      }
    });
  } else {
    for (int step = 0; step < Tn; ++step) {
      T* hin = at_step(s, step);
      state_rows(s, hin, 0, Bn);
      T* dst = product_dst(s);
      if (blocked)
        own_mm_packed<T>(Bn, Hn, G, hin, Hn, panels, dst, G, !s.uh);
      else
        gemm(false, false, Bn, G, Hn, hin, Hn, wt, G, s.uh ? T(0) : T(1), dst, G);
      forward_rows(s, tmp_t.data_ptr<T>());
    }
  }
  if (keep) res.insert(res.end(), {sv_t, hprev_t, hin_t, cprev_t,
                                   xhat_t.defined() ? xhat_t : at::empty({0}, opt),
                                   rstd_t.defined() ? rstd_t : at::empty({0}, opt)});
}
