// The layer kernels' backward of one direction (BPTT): the step loop in reverse on one thread,
// split by batch rows, on a team, or pipelined with the parameter gradients; then the weight
// gradients as GEMMs over T*B rows. Included inside layer_kernels.cpp's anonymous namespace;
// must not include headers.

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
  // oneDNN's products take W_hh^T (and W_ih) copied and reordered, MKL's packed product W_hh
  // packed, at every call: in a call of one or two steps that costs more than it saves (the
  // (1, 32, 256) LSTM's backward ran 1.5x slower with oneDNN on AMD Zen 3), as in the forward.
  const bool few_steps = Tn <= 2;
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
  // measured 5-20% slower than one thread, above 5-10% faster (unless the tuning forces teams).
  int team = Tn < 2 ? 1 : team_threads<T>(Bn, G, Hn);
  if (tuned.team_macs > 0) team = std::max(1, std::min(team, Hn / (G == Hn ? 128 : 64)));
  // Small steps on one thread (the product below tuned.parallel_step_macs, the row pass below
  // tuned.parallel_row_elems) leave the other cores idle: there the parameter gradients run on a
  // second thread a chunk of steps behind the loop instead of after it, given two chunks at
  // least (with one, the second thread only waits: the (1, 100, 128) RNN ran 30% slower).
  const int split = Tn < 2 ? 1 : split_threads<T>(Bn, G, Hn);
  if (split > 1) team = 1;
  const bool pipelined = team == 1 && split == 1 && tuned.pipeline_rows > 0 && Tn >= 4 &&
                         TB >= 2 * tuned.pipeline_rows && Bn <= tuned.small_batch &&
                         int64_t(Bn) * G * Hn < tuned.parallel_step_macs &&
                         int64_t(Bn) * G < tuned.parallel_row_elems &&
                         at::get_num_threads() >= 2 && !at::in_parallel_region() &&
                         !rk_common::contended();
  // W_hh (G, H) packed in panels for the register-blocked product of the split and the pipeline
  const at::Tensor hh_panels = split > 1 || pipelined
                                   ? rk_common::pack_panels(k.pack, G, Hn, w.w_hh, Hn, false, opt)
                                   : at::Tensor();
  if (team > 1) {
    // One region for all steps (as forward_team): thread p runs the elementwise pass on its
    // units, and after the barrier (dG of the step complete) its columns of dh += dG W_hh.
    // dG has a slot per step, so the next step's pass may start while a thread still reads it.
    // Per thread: its columns of W_hh, (G, n) packed in panels, and a copy of the step's dG
    // (read in a pattern no prefetcher follows, half of it written by the other core).
    const int64_t local = (int64_t(Bn) * G + 15) / 16 * 16 + 16;
    const int64_t packed_size = rk_common::packed_elems(G, Hn, int(sizeof(T)));
    at::Tensor work_t = pooled_empty({packed_size + team * local}, opt);
    T* packed = work_t.data_ptr<T>();
    T* dg_local = packed + packed_size;
    rk_common::run_team(team, [&](int p, int threads, rk_common::SpinBarrier& barrier) {
      const rk_common::UnitSlice u = rk_common::unit_slice(Hn, p, threads, 64 / int(sizeof(T)));
      T* wp = packed + int64_t(G) * u.u0;  // (G, n), packed
      T* dgl = dg_local + p * local;       // (B, G)
      k.pack(G, u.n, w.w_hh + u.u0, Hn, false, wp);
      BwdStep<T> st = s;
      for (int step = 0; step < Tn; ++step) {
        at_step(st, step);
        k.bwd(units_from(st, u.u0, u.n));
        barrier.wait(threads);
        std::memcpy(dgl, st.dgh, sizeof(T) * Bn * G);
        k.mm_packed(Bn, G, u.n, dgl, G, wp, dh + u.u0, Hn, true, nullptr);
      }
    });
  } else if (split > 1) {
    // Split by batch rows (as forward_split): each thread runs the loop for its own rows.
    rk_common::SplitWatch watch;  // a busy neighbour (contention.h)
    rk_common::run_team(split, [&](int p, int nt, rk_common::SpinBarrier&) {
      const int b0 = int(int64_t(Bn) * p / nt), b1 = int(int64_t(Bn) * (p + 1) / nt);
      if (b0 == b1) return;
      const int64_t started = rk_common::now_us();
      BwdStep<T> st = s;
      for (int step = 0; step < Tn; ++step) {
        at_step(st, step);
        BwdStep<T> mine = rows_from(st, b0, b1);
        k.bwd(mine);
        k.mm_packed(b1 - b0, G, Hn, mine.dgh, G, hh_panels.data_ptr<T>(), mine.dh, Hn, true,
                    nullptr);  // dh += dG_h W_hh
      }
      watch.finished(p, b1 - b0, started);
    });
  } else if (pipelined) {
    // Thread 0 runs the step loop; thread 1 follows a chunk behind with the parameter
    // gradients and dx of the chunks done so far, on a core that would otherwise wait.
    rk_common::run_pipelined(
        Tn, std::max(1, int(tuned.pipeline_rows / Bn)),
        [&](int step) {
          at_step(s, step);
          k.bwd(s);
          k.mm_packed(Bn, G, Hn, s.dgh, G, hh_panels.data_ptr<T>(), dh, Hn, true,
                      nullptr);  // dh_prev += dG_h[t] W_hh
        },
        [&](int s0, int s1) {
          const int t0 = reverse ? s0 : Tn - s1;  // the chunk's first time index
          grads_part(int64_t(t0) * Bn, int64_t(s1 - s0) * Bn, s0 == 0);
        });
  } else {
    BlasThreads threads(int64_t(Bn) * G * Hn, tuned.serial_step_macs);
    const bool dnn_step = onednn::wanted<T>(Bn, layer_macs) && !few_steps;
    const StepGemm<T> step_gemm(Bn, Hn, G, w.w_hh, opt, nullptr,  // (B, G) x W_hh (G, H)
                                dnn_step ? w.w_hh_t.t().contiguous() : at::Tensor(),
                                !few_steps);
    rk_common::StallWatch watch;  // a busy neighbour (engine_common.h)
    rk_common::SerialWhileContended serial;
    for (int step = 0; step < Tn; ++step) {
      at_step(s, step);
      serial.update();
      watch.start();
      run_rows(k.bwd, s);
      // dh_prev += dG_h[t] W_hh: through a = ... + W_hh h_prev.  (B, G) x (G, H)
      step_gemm.run(k, s.dgh, dh, true);
      watch.stop();
    }
  }
  if (pipelined) return;
  // Weight gradients, summed over all steps: one product each over the T*B rows (oneDNN's
  // where it is faster, onednn.h).
  const int64_t big_macs = few_steps ? 0 : layer_macs;
  if (layer_macs < tuned.own_grad_macs && !onednn::wanted<T>(TB, big_macs)) {
    // A small call's gradients on the packed kernel, one thread: dW (G, K) = dG^T (G, TB) x
    // (TB, K), with dG^T transposed once and x (or h_prev) packed as the product's matrix.
    at::Tensor dgt_t = pooled_empty({G, TB}, opt);
    T* dgt = dgt_t.data_ptr<T>();
    auto grad = [&](const T* dg, int K, const T* src, T* dw, bool transpose) {
      if (transpose) k.transpose(dg, int(TB), G, dgt, int(TB));
      const at::Tensor panels = rk_common::pack_panels(k.pack, int(TB), K, src, K, false, opt);
      k.mm_packed(G, int(TB), K, dgt, int(TB), panels.data_ptr<T>(), dw, K, false, nullptr);
    };
    grad(dgx, In, x, dw_ih, true);            // dW_ih = dGx^T x
    grad(dgh, Hn, hprev, dw_hh, dgh != dgx);  // dW_hh = dGh^T h_prev
  } else if (dgh != dgx ||
             !onednn::weight_grads_shared(TB, G, dgx, In, x, dw_ih, Hn, hprev, dw_hh,
                                          big_macs)) {
    onednn::big_gemm(true, false, G, In, int(TB), dgx, G, x, In, T(0), dw_ih, In,  // dGx^T x
                     big_macs);
    onednn::big_gemm(true, false, G, Hn, int(TB), dgh, G, hprev, Hn, T(0), dw_hh, Hn,  // dGh^T h
                     big_macs);
  }
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
    onednn::big_gemm(false, false, int(TB), In, G, dgx, G, w.w_ih, In,
                     dx_accumulate ? T(1) : T(0), dx, In, big_macs);
  }
}
