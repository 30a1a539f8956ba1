// The layer kernels' forward schedules: how a direction's step loop runs over threads (one
// thread, split by batch rows, a team owning slices of hidden units), and the rules that pick
// one from the tuning (tuning.h). Included inside layer_kernels.cpp's anonymous namespace;
// must not include headers.

// The team size for a step loop of (B, G) x (H) products; 1 = the plain loop.
// A plain RNN has a quarter of an LSTM's product per step, too little to pay for the barrier
// at small batches except for one or two rows of 128 units or more (measured: B = 1 gains 10%
// at H = 128 and 15% at H = 256; B >= 4 at H = 128 loses up to 20%).
template <typename T>
int team_threads(int B, int G, int H) {
  const int64_t macs = int64_t(B) * G * H;
  if (tuned.team_batch <= 0 || macs < tuned.team_macs || rk_common::contended()) return 1;
  if (B > tuned.team_batch) {
    if (tuned.team_macs > 0 && macs > tuned.team_large_macs) return 1;
    return rk_common::team_size(H, 64 / int(sizeof(T)));
  }
  if (tuned.team_macs > 0 && G == H && (B > 2 || H < 128)) return 1;
  return rk_common::team_size(H, 64 / int(sizeof(T)));
}

// The thread count for a step loop split by batch rows; 1 = no split. Measured against the
// unit-sliced team and the one-thread loop: with 4 rows per thread or more the split ran
// 8-28% faster (LSTM, GRU, RNN at B = 8 to 64, H = 64 to 256, inference and training); with 2
// rows per thread it was up to 20% slower at H >= 128 (every thread reads all of W_hh).
template <typename T>
int split_threads(int B, int G, int H) {
  const int64_t macs = int64_t(B) * G * H;
  const int64_t weight_bytes = int64_t(G) * H * int64_t(sizeof(T));
  if (tuned.split_rows <= 0 || macs < tuned.team_macs || macs > tuned.team_large_macs ||
      (tuned.split_weight_bytes > 0 && weight_bytes > tuned.split_weight_bytes) ||
      at::in_parallel_region() || rk_common::contended())
    return 1;
  return std::max(1, std::min({at::get_num_threads(), int(B / tuned.split_rows), 8}));
}

// Moves a step's pointers to time t (step buffers (T, B, *) of the forward).
template <typename T>
void forward_at(FwdStep<T>& s, int t, T* xp, T* out, const at::Tensor& act_t,
                const at::Tensor& cprev_t, const at::Tensor& tanhc_t) {
  const int64_t bh = int64_t(t) * s.B * s.H;
  s.t = t;
  s.a = xp ? xp + int64_t(t) * s.B * s.G : nullptr;  // null: the caller sets it
  s.out = out + int64_t(t) * s.B * s.ldo;
  if (act_t.defined()) s.act = act_t.data_ptr<T>() + int64_t(t) * s.B * 4 * s.H;
  if (cprev_t.defined()) {
    s.cprev = cprev_t.data_ptr<T>() + bh;
    s.tanhc = tanhc_t.data_ptr<T>() + bh;
  }
}

// The step loop on one thread (products and row passes may each fork over threads).
// `zero_h0`: the state starts at zero, so the first step has no product with W_hh (of every
// row, in either direction: a row whose sequence starts later keeps the zero state till then).
template <typename T>
void forward_loop(const Kernels<T>& k, void (*rows)(const FwdStep<T>&), FwdStep<T> s, int Tn,
                  bool reverse, const std::function<T*(int)>& xp_at, const T* wt,
                  const at::Tensor& panels, const T* w_hh_nk, const at::Tensor& dnn_nk,
                  T* hprev, const at::Tensor& act_t, const at::Tensor& cprev_t,
                  const at::Tensor& tanhc_t, const at::TensorOptions& opt, bool zero_h0) {
  const int Bn = s.B, G = s.G, Hn = s.H;
  const int64_t mode = s.mode;
  T* h = s.h;
  T* out = s.out;
  BlasThreads threads(int64_t(Bn) * G * Hn, tuned.serial_step_macs);
  // h W_hh^T; w_hh_nk marks a call of one or two steps (no packing, oneDNN's generic layout)
  const StepGemm<T> step_gemm(Bn, G, Hn, wt, opt, w_hh_nk, dnn_nk, w_hh_nk == nullptr, panels);
  rk_common::StallWatch watch;  // a busy neighbour (engine_common.h)
  rk_common::SerialWhileContended serial;
  for (int step = 0; step < Tn; ++step) {
    const int t = reverse ? Tn - 1 - step : step;
    forward_at<T>(s, t, nullptr, out, act_t, cprev_t, tanhc_t);
    s.a = xp_at(t);
    serial.update();
    watch.start();
    if (hprev) std::memcpy(hprev + int64_t(t) * Bn * Hn, h, sizeof(T) * Bn * Hn);
    // GRU: gh = h W_hh^T; RNN/LSTM: a += h W_hh^T (oneDNN: gh = h W_hh^T, added by the rows)
    at::Tensor product;
    if (zero_h0 && step == 0 && !step_gemm.dnn.defined()) {  // h W_hh^T = 0: a zero state
      if (mode == GRU) std::memset(const_cast<T*>(s.gh), 0, sizeof(T) * Bn * G);
    } else if (step_gemm.dnn.defined()) {
      product = step_gemm.product(h);
      s.gh = product.data_ptr<T>();
    } else {
      T* dst = mode == GRU ? const_cast<T*>(s.gh) : s.a;
      step_gemm.run(k, h, dst, mode != GRU);
    }
    run_rows(rows, s);
    watch.stop();
  }
}

// The step loop split by batch rows: thread p runs the whole loop for its own rows
// [b0, b1): their input projection x W_ih^T + b at each step (into xp when the backward keeps
// it, else into a small buffer of the thread's, still in cache when the step reads it), their
// product with all of W_hh^T, their row pass and their state, independent of the other
// threads, so that no step waits for another thread.
template <typename T>
void forward_split(int threads, const Kernels<T>& k, void (*rows)(const FwdStep<T>&),
                   FwdStep<T> s, int Tn, bool reverse, int In, const T* x, const T* ih_panels,
                   const T* bias, T* xp, const T* hh_panels, T* hprev, const at::Tensor& act_t,
                   const at::Tensor& cprev_t, const at::Tensor& tanhc_t,
                   const at::TensorOptions& opt) {
  const int Bn = s.B, G = s.G, Hn = s.H;
  const bool gru = s.mode == GRU;
  T* out = s.out;
  const int most = (Bn + threads - 1) / threads;  // rows of the largest slice
  const at::Tensor scratch_t = xp ? at::Tensor() : at::empty({threads, most, G}, opt);
  rk_common::SplitWatch watch;  // a busy neighbour (contention.h)
  rk_common::run_team(threads, [&](int p, int nt, rk_common::SpinBarrier&) {
    const int b0 = int(int64_t(Bn) * p / nt), b1 = int(int64_t(Bn) * (p + 1) / nt), nb = b1 - b0;
    if (nb == 0) return;
    const int64_t started = rk_common::now_us();
    T* scratch = xp ? nullptr : scratch_t.data_ptr<T>() + int64_t(p) * most * G;
    FwdStep<T> st = s;
    for (int step = 0; step < Tn; ++step) {
      const int t = reverse ? Tn - 1 - step : step;
      forward_at(st, t, xp, out, act_t, cprev_t, tanhc_t);
      FwdStep<T> mine = rows_from(st, b0, b1);
      const int64_t r0 = int64_t(t) * Bn + b0;  // the first row of (T*B, *)
      mine.a = xp ? xp + r0 * G : scratch;
      mine.xb = nullptr;
      k.mm_packed(nb, In, G, x + r0 * In, In, ih_panels, mine.a, G, false, bias);
      if (hprev) std::memcpy(hprev + r0 * Hn, mine.hin, sizeof(T) * nb * Hn);
      if (gru) {  // gh = h W_hh^T
        k.mm_packed(nb, Hn, G, mine.hin, Hn, hh_panels, const_cast<T*>(mine.gh), mine.ldgh,
                    false, nullptr);
      } else {    // a += h W_hh^T
        k.mm_packed(nb, Hn, G, mine.hin, Hn, hh_panels, mine.a, G, true, nullptr);
      }
      rows(mine);
    }
    watch.finished(p, nb, started);
  });
}

// The step loop on a team of threads, one region for all steps. Thread p owns a slice of n
// hidden units: it packs its rows of W_ih and W_hh, transposed, one contiguous (K, n) panel
// per gate; computes its columns of xp = x W_ih^T + b a few steps ahead, into xp when the
// backward keeps it (null xp: a ring of those few steps, which stays in cache and spares the
// page faults of a fresh (T, B, G) buffer); then per step its columns of h W_hh^T, the
// elementwise pass on its units, and the step's barrier. The state alternates between
// buffers (the saved hprev slots when the backward needs them) so that no thread overwrites
// the h another thread is still reading; the last step writes the layer's final state.
template <typename T>
void forward_team(int team, const Kernels<T>& k, void (*rows)(const FwdStep<T>&), FwdStep<T> s,
                  int Tn, bool reverse, int In, const T* x, const Dir<T>& w, const T* bias,
                  T* xp, T* hprev, const at::Tensor& act_t, const at::Tensor& cprev_t,
                  const at::Tensor& tanhc_t, const at::TensorOptions& opt) {
  const int Bn = s.B, G = s.G, Hn = s.H, gates = G / Hn;
  const int64_t BH = int64_t(Bn) * Hn;
  const bool gru = s.mode == GRU;
  T* h = s.h;
  T* out = s.out;
  // Work space: packed weights and GRU product scratch (each thread's part at an offset
  // proportional to its first unit), a copy of h per thread (a cache line apart), the xp ring,
  // the two state buffers.
  const int64_t local = (BH + 15) / 16 * 16 + 16;
  const int chunk = std::max(1, 64 / Bn);  // steps of xp computed at a time
  const int64_t ring_size = xp ? 0 : int64_t(chunk) * Bn * G;
  const int64_t gpad = int64_t(gates) * rk_common::packed_elems(1, Hn, int(sizeof(T)));
  at::Tensor work_t = pooled_empty({int64_t(Hn + In) * gpad + int64_t(Bn) * G +
                                        (hprev ? 0 : 2 * BH) + team * local + ring_size},
                                   opt);
  T* packed_hh = work_t.data_ptr<T>();
  T* packed_ih = packed_hh + int64_t(Hn) * gpad;
  T* scratch = packed_ih + int64_t(In) * gpad;
  T* h_local = scratch + int64_t(Bn) * G;
  T* ring = h_local + team * local;
  T* buf = ring + ring_size;
  auto time_of = [&](int step) { return reverse ? Tn - 1 - step : step; };
  auto h_after = [&](int step) -> T* {  // where the state after `step` goes
    if (step == Tn - 1) return h;
    return hprev ? hprev + time_of(step + 1) * BH : buf + (step % 2) * BH;
  };
  if (hprev) std::memcpy(hprev + time_of(0) * BH, h, sizeof(T) * BH);
  rk_common::run_team(team, [&](int p, int threads, rk_common::SpinBarrier& barrier) {
    // team_size gives every thread at least one vector of units
    const rk_common::UnitSlice u = rk_common::unit_slice(Hn, p, threads, 64 / int(sizeof(T)));
    const int n = u.n, width = gates * n;
    const int64_t np = rk_common::packed_elems(1, n, int(sizeof(T)));  // n padded to a vector
    T* wph = packed_hh + int64_t(Hn) * gates * u.u0;  // gate g: (H, n) packed at wph + g H np
    T* wpi = packed_ih + int64_t(In) * gates * u.u0;  // gate g: (I, n) packed at wpi + g I np
    T* gh = scratch + int64_t(Bn) * gates * u.u0;     // (B, gates * n)
    T* hl = h_local + p * local;                      // (B, H)
    for (int g = 0; g < gates; ++g) {
      const int64_t row = int64_t(g) * Hn + u.u0;  // first row of this gate's slice
      k.pack(Hn, n, w.w_hh + row * Hn, Hn, true, wph + int64_t(g) * Hn * np);
      k.pack(In, n, w.w_ih + row * In, In, true, wpi + int64_t(g) * In * np);
    }
    // xp, own columns, for the `count` steps from `first` on: bias + x W_ih^T. Run a few
    // steps ahead (about 64 rows at a time) so that the rows are still in cache when used.
    int chunk_t0 = 0;  // the first time index of the chunk of xp computed last
    auto project = [&](int first, int count) {
      chunk_t0 = std::min(time_of(first), time_of(first + count - 1));
      const int64_t r0 = int64_t(chunk_t0) * Bn;
      const int rn = count * Bn;
      for (int g = 0; g < gates; ++g) {
        const int64_t col = int64_t(g) * Hn + u.u0;
        k.mm_packed(rn, In, n, x + r0 * In, In, wpi + int64_t(g) * In * np,
                    (xp ? xp + r0 * G : ring) + col, G, false, bias ? bias + col : nullptr);
      }
    };
    FwdStep<T> st = s;
    for (int step = 0; step < Tn; ++step) {
      if (step % chunk == 0) project(step, std::min(chunk, Tn - step));
      forward_at(st, time_of(step), xp, out, act_t, cprev_t, tanhc_t);
      if (!xp) st.a = ring + int64_t(time_of(step) - chunk_t0) * Bn * G;
      st.hin = step == 0 ? h : h_after(step - 1);
      st.h = h_after(step);
      // The product reads h in a pattern no prefetcher follows, half of it last written by
      // another core: a sequential copy first takes each line across once, at full speed.
      std::memcpy(hl, st.hin, sizeof(T) * BH);
      FwdStep<T> mine = units_from(st, u.u0, n);
      if (gru) {  // gh = h W_hh^T, own columns, apart
        for (int g = 0; g < gates; ++g)
          k.mm_packed(Bn, Hn, n, hl, Hn, wph + int64_t(g) * Hn * np, gh + int64_t(g) * n,
                      width, false, nullptr);
        mine.gh = gh;
        mine.ghs = n;
        mine.ldgh = width;
      } else {  // a += h W_hh^T, own columns
        for (int g = 0; g < gates; ++g)
          k.mm_packed(Bn, Hn, n, hl, Hn, wph + int64_t(g) * Hn * np, mine.a + int64_t(g) * Hn,
                      G, true, nullptr);
      }
      rows(mine);
      barrier.wait(threads);
    }
  });
}
