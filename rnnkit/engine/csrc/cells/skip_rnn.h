// The skip RNN cell (its state also reads h_{t-d}, d = 1..K): the elementwise pass of one whole
// step, forward and backward, with zoneout on h and on the delayed states. Its own driver is
// direction_skip.h. Included inside an ISA namespace after zoneout.h; no headers. Reference
// twin: rnnkit/cells/skip_rnn_cell.py; tests: tests/test_engine_variants.py.
//
// The state is a register reg = [h_{t-1}, h_{t-2}, ..., h_{t-K}] (B, K*H): fields h (the first
// H) and past (the rest). A step: h = act(a), past = [h_{t-1}, ..., h_{t-K+1}] (a shift).

template <typename T>
void skip_fwd_rows(const SkipStep<T>& s) {
  const int H = s.H, W = s.K * s.H, P = W - H;
  T* cand = s.tmp;
  for (int b = 0; b < s.B; ++b) {
    T* ob = s.out + int64_t(b) * H;
    if (s.len && s.t >= s.len[b]) {  // past this sequence's end: the state passes through
      std::memset(ob, 0, sizeof(T) * H);
      continue;
    }
    T* rb = s.reg + int64_t(b) * W;
    const T* ab = s.a + int64_t(b) * H;
    T* vb = s.v + int64_t(b) * H;
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      cand[j] = act_unit(s.relu, ab[j]);                   // h = act(W x + b + sum_d W_d h_{t-d})
      vb[j] = cand[j];
    }
    if (P) std::memcpy(cand + H, rb, sizeof(T) * P);    // past = [h_{t-1}, ..., h_{t-K+1}]
    zone_mix(rb, cand, s.zh ? s.zh + int64_t(b) * H : nullptr, s.rh, H);
    if (P) zone_mix(rb + H, cand + H, s.zp ? s.zp + int64_t(b) * P : nullptr, s.rp, P);
    std::memcpy(ob, rb, sizeof(T) * H);
  }
}

// dreg (B, W) carried dL/d(register) in, the direct part of dL/d(previous register) out (the
// driver adds the delayed products); da (B, H) = dL/da.
template <typename T>
void skip_bwd_rows(const SkipStep<T>& s) {
  const int H = s.H, W = s.K * s.H, P = W - H;
  T* dcand = s.tmp;
  for (int b = 0; b < s.B; ++b) {
    T* db = s.da + int64_t(b) * H;
    if (s.len && s.t >= s.len[b]) {  // state passed through: so do the gradients
      std::memset(db, 0, sizeof(T) * H);
      continue;
    }
    T* rb = s.dreg + int64_t(b) * W;
    const T* ob = s.dout + int64_t(b) * H;
    const T* vb = s.v + int64_t(b) * H;
#pragma omp simd
    for (int j = 0; j < H; ++j) rb[j] += ob[j];          // h_t feeds the output and the state
    zone_back(rb, dcand, s.zh ? s.zh + int64_t(b) * H : nullptr, s.rh, H);
    if (P) zone_back(rb + H, dcand + H, s.zp ? s.zp + int64_t(b) * P : nullptr, s.rp, P);
#pragma omp simd
    for (int j = 0; j < H; ++j) db[j] = dcand[j] * act_unit_grad(s.relu, vb[j]);  // through act
#pragma omp simd
    for (int j = 0; j < P; ++j) rb[j] += dcand[H + j];   // through the shift past = reg[:P]
  }
}

void skip_fwd_f(const SkipStep<float>& s) { skip_fwd_rows<float>(s); }
void skip_fwd_d(const SkipStep<double>& s) { skip_fwd_rows<double>(s); }
void skip_bwd_f(const SkipStep<float>& s) { skip_bwd_rows<float>(s); }
void skip_bwd_d(const SkipStep<double>& s) { skip_bwd_rows<double>(s); }
