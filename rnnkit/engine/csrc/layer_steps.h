// The layer kernels' step records (FwdStep, BwdStep: one step's pointers), their views on a
// slice of rows or of hidden units, and a direction's weights (Dir). Included inside
// layer_kernels.cpp's anonymous namespace; must not include headers.

// One step of the forward elementwise pass; pointers already at step t.
template <typename T>
struct FwdStep {
  int64_t mode;
  int B, H, G, ldo, t;
  int n;               // hidden units this pass covers (H, or one thread's slice)
  const int64_t* len;  // (B) or null
  T* a;                // (B, G) pre-activations; RNN/LSTM: activations written back
  const T* gh;         // GRU: (B, G) h W_hh^T; RNN/LSTM: the same to add to a, or null
  int ghs, ldgh;       // gh's gate and row strides (H and G, or a thread's packed slice)
  const T* b_hh;       // GRU: (G), zeros when the layer has no bias
  const T* xb;         // (G) x-side bias to add to a first (b_ih, + b_hh for RNN/LSTM), or null
  const T* hin;        // (B, H) state before the step (h itself, or the previous buffer)
  T* h;                // (B, H) state after the step
  T* c;                // (B, H) LSTM cell state
  T* out;              // (B, ldo) output rows of this direction
  T* act;              // GRU keep: (B, 4H) r, z, n, hn
  T* cprev;            // LSTM keep: (B, H)
  T* tanhc;            // LSTM keep: (B, H)
};

// One step of the backward elementwise pass; pointers already at step t.
template <typename T>
struct BwdStep {
  int64_t mode;
  int B, H, G, ldo, aw, t;
  int n;           // hidden units this pass covers (H, or one thread's slice)
  const int64_t* len;
  const T* act;    // (B, aw) saved activations
  const T* hprev;  // (B, H)
  const T* cprev;  // LSTM
  const T* tanhc;  // LSTM
  const T* dout;   // (B, ldo)
  T* dh;           // (B, H) carried dL/dh
  T* dc;           // LSTM (B, H) carried dL/dc
  T* dgx;          // (B, G) gradient of the x-side pre-activations
  T* dgh;          // GRU (B, G) of the h-side ones (= dgx for RNN/LSTM)
};
// A step's elementwise pass over rows [b0, b1) of the batch: the same step with every
// per-row pointer moved to row b0.
template <typename T>
FwdStep<T> rows_from(FwdStep<T> s, int b0, int b1) {
  const int64_t H = s.H, G = s.G;
  s.B = b1 - b0;
  if (s.len) s.len += b0;
  s.a += b0 * G;
  if (s.gh) s.gh += int64_t(b0) * s.ldgh;
  s.hin += b0 * H;
  s.h += b0 * H;
  if (s.c) s.c += b0 * H;
  s.out += int64_t(b0) * s.ldo;
  if (s.act) s.act += b0 * 4 * H;
  if (s.cprev) s.cprev += b0 * H;
  if (s.tanhc) s.tanhc += b0 * H;
  return s;
}

template <typename T>
BwdStep<T> rows_from(BwdStep<T> s, int b0, int b1) {
  const int64_t H = s.H, G = s.G;
  s.B = b1 - b0;
  if (s.len) s.len += b0;
  s.act += b0 * s.aw;
  s.hprev += b0 * H;
  if (s.cprev) s.cprev += b0 * H;
  if (s.tanhc) s.tanhc += b0 * H;
  s.dout += int64_t(b0) * s.ldo;
  s.dh += b0 * H;
  if (s.dc) s.dc += b0 * H;
  s.dgx += b0 * G;
  s.dgh += b0 * G;
  return s;
}

// A step's elementwise pass over hidden units [u0, u0 + n) of every row: the same step with
// every per-unit pointer moved to unit u0 (gate and row strides unchanged).
template <typename T>
FwdStep<T> units_from(FwdStep<T> s, int u0, int n) {
  s.n = n;
  s.a += u0;
  if (s.gh) s.gh += u0;
  if (s.b_hh) s.b_hh += u0;
  if (s.xb) s.xb += u0;
  s.hin += u0;
  s.h += u0;
  if (s.c) s.c += u0;
  s.out += u0;
  if (s.act) s.act += u0;
  if (s.cprev) s.cprev += u0;
  if (s.tanhc) s.tanhc += u0;
  return s;
}

template <typename T>
BwdStep<T> units_from(BwdStep<T> s, int u0, int n) {
  s.n = n;
  s.act += u0;
  s.hprev += u0;
  if (s.cprev) s.cprev += u0;
  if (s.tanhc) s.tanhc += u0;
  s.dout += u0;
  s.dh += u0;
  if (s.dc) s.dc += u0;
  s.dgx += u0;
  s.dgh += u0;
  return s;
}

// Runs a step's elementwise pass, split over threads when the step is large enough.
template <typename Step>
void run_rows(void (*rows)(const Step&), const Step& s) {
  rk_common::split_rows(s.B, int64_t(s.B) * s.G, tuned.parallel_row_elems,
                        [&](int b0, int b1, int) { rows(rows_from(s, b0, b1)); });
}

template <typename T>
struct Dir {
  at::Tensor w_ih_t, w_hh_t, b_ih_t, b_hh_t;  // the same, as tensors (biases may be empty)
  const T* w_ih;   // (G, I)
  const T* w_hh;   // (G, H)
  const T* b_ih;   // (G) or null
  const T* b_hh;   // (G) or null
};

inline int gate_count(int64_t mode) { return mode == LSTM ? 4 : (mode == GRU ? 3 : 1); }
