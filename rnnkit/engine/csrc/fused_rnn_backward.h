// The hand-written BPTT backward of one layer direction, and the Python bindings of the engine.
// Included once, at the end of fused_rnn.cpp (a single translation unit keeps the build short).

namespace {

template <typename T>
inline void zero_row(T* p, int n) { std::memset(p, 0, sizeof(T) * n); }

// LSTM row. In: dh (carried from t+1, plus dout), dc carried. Out: dG = d(i,f,g,o pre-act),
// dh <- 0 (the GEMM adds dG W_hh), dc <- dc_prev.
template <typename T>
inline void lstm_back_row(const T* __restrict a, const T* __restrict cprev,
                          const T* __restrict tanh_c, const T* __restrict dout,
                          T* __restrict dh, T* __restrict dc, T* __restrict dg, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], tc = tanh_c[j];
    const T dh_t = dh[j] + dout[j];                     // h feeds the output and step t+1
    const T d_o = dh_t * tc;                            // through h = o * tanh(c)
    const T dc_t = dc[j] + dh_t * o * (T(1) - tc * tc); // through h = o * tanh(c)
    const T d_i = dc_t * g;                             // through c = f * c_prev + i * g
    const T d_g = dc_t * i;
    const T d_f = dc_t * cprev[j];
    dc[j] = dc_t * f;                                   // dc_prev, through c = f * c_prev + ...
    dg[j] = d_i * i * (T(1) - i);                       // through i = sigmoid(a_i)
    dg[H + j] = d_f * f * (T(1) - f);                   // through f = sigmoid(a_f)
    dg[2 * H + j] = d_g * (T(1) - g * g);               // through g = tanh(a_g)
    dg[3 * H + j] = d_o * o * (T(1) - o);               // through o = sigmoid(a_o)
    dh[j] = T(0);
  }
}

// GRU row. a = (r, z, n, hn) saved by the forward. dgx = gradient of the x-side
// pre-activations (W_i* x + b_i*), dgh = of the h-side ones (W_h* h + b_h*); they differ in n only.
template <typename T>
inline void gru_back_row(const T* __restrict a, const T* __restrict hprev,
                         const T* __restrict dout, T* __restrict dh, T* __restrict dgx,
                         T* __restrict dgh, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const T r = a[j], z = a[H + j], n = a[2 * H + j], hn = a[3 * H + j];
    const T dh_t = dh[j] + dout[j];
    const T d_n = dh_t * (T(1) - z);                    // through h = (1 - z) n + z h_prev
    const T d_z = dh_t * (hprev[j] - n);                // through h = (1 - z) n + z h_prev
    const T d_an = d_n * (T(1) - n * n);                // through n = tanh(a_n)
    const T d_hn = d_an * r;                            // through a_n = W_in x + r * hn
    const T d_r = d_an * hn;                            // through a_n = W_in x + r * hn
    const T d_ar = d_r * r * (T(1) - r);                // through r = sigmoid(a_r)
    const T d_az = d_z * z * (T(1) - z);                // through z = sigmoid(a_z)
    dgx[j] = d_ar;
    dgx[H + j] = d_az;
    dgx[2 * H + j] = d_an;
    dgh[j] = d_ar;
    dgh[H + j] = d_az;
    dgh[2 * H + j] = d_hn;
    dh[j] = dh_t * z;                                   // direct path of h_prev; GEMM adds the rest
  }
}

template <typename T>
inline void rnn_back_row(bool relu, const T* __restrict hnew, const T* __restrict dout,
                         T* __restrict dh, T* __restrict dg, int H) {
  if (relu) {
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      const T dh_t = dh[j] + dout[j];
      dg[j] = hnew[j] > T(0) ? dh_t : T(0);             // through h = relu(a)
      dh[j] = T(0);
    }
  } else {
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      const T dh_t = dh[j] + dout[j];
      dg[j] = dh_t * (T(1) - hnew[j] * hnew[j]);        // through h = tanh(a)
      dh[j] = T(0);
    }
  }
}

// Column sums of a (R, G) matrix into db (G).
template <typename T>
void col_sum(const T* m, int64_t rows, int G, T* db) {
  zero_row(db, G);
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict row = m + r * G;
#pragma omp simd
    for (int j = 0; j < G; ++j) db[j] += row[j];
  }
}

template <typename T>
void backward_dir(int64_t mode, int Tn, int Bn, int In, int Hn, const T* x, Dir<T> w,
                  const int64_t* len, bool reverse, const at::Tensor* saved, const T* dout,
                  int ldo, T* dh, T* dc, T* dx, bool dx_accumulate, T* dw_ih, T* dw_hh,
                  T* db_ih, T* db_hh, const at::TensorOptions& opt) {
  const int G = gate_count(mode) * Hn;
  const int64_t TB = int64_t(Tn) * Bn;
  const T* act = saved[0].data_ptr<T>();
  const T* hprev = saved[1].data_ptr<T>();
  const T* cprev = mode == LSTM ? saved[2].data_ptr<T>() : nullptr;
  const T* tanhc = mode == LSTM ? saved[3].data_ptr<T>() : nullptr;
  at::Tensor dgx_t = at::empty({Tn, Bn, G}, opt);
  at::Tensor dgh_t = mode == GRU ? at::empty({Tn, Bn, G}, opt) : dgx_t;
  T* dgx = dgx_t.data_ptr<T>();
  T* dgh = dgh_t.data_ptr<T>();
  const int AW = mode == GRU ? 4 * Hn : G;  // width of a saved activation row

  for (int s = 0; s < Tn; ++s) {
    const int t = reverse ? s : Tn - 1 - s;  // the forward's steps, last first
    for (int b = 0; b < Bn; ++b) {
      const int64_t r = int64_t(t) * Bn + b;
      if (len && t >= len[b]) {  // state passed through: gradients pass through too
        zero_row(dgx + r * G, G);
        if (mode == GRU) zero_row(dgh + r * G, G);
        continue;
      }
      const T* ab = act + r * AW;
      const T* db = dout + r * ldo;
      T* dhb = dh + int64_t(b) * Hn;
      if (mode == LSTM) {
        lstm_back_row(ab, cprev + r * Hn, tanhc + r * Hn, db, dhb, dc + int64_t(b) * Hn,
                      dgx + r * G, Hn);
      } else if (mode == GRU) {
        gru_back_row(ab, hprev + r * Hn, db, dhb, dgx + r * G, dgh + r * G, Hn);
      } else {
        rnn_back_row(mode == RNN_RELU, ab, db, dhb, dgx + r * G, Hn);
      }
    }
    // dh_prev += dG_h[t] W_hh: through a = ... + W_hh h_prev.  (B, G) x (G, H)
    gemm(false, false, Bn, Hn, G, T(1), dgh + int64_t(t) * Bn * G, G, w.w_hh, Hn, T(1), dh, Hn);
  }
  // Weight gradients, summed over all steps: one GEMM each over the T*B rows.
  gemm(true, false, G, In, int(TB), T(1), dgx, G, x, In, T(0), dw_ih, In);      // dW_ih = dGx^T x
  gemm(true, false, G, Hn, int(TB), T(1), dgh, G, hprev, Hn, T(0), dw_hh, Hn);  // dW_hh = dGh^T h
  if (db_ih) {
    col_sum(dgx, TB, G, db_ih);                                                 // db_ih = sum dGx
    col_sum(dgh, TB, G, db_hh);                                                 // db_hh = sum dGh
  }
  if (dx) {  // dx (+)= dGx W_ih: through xp = x W_ih^T
    gemm(false, false, int(TB), In, G, T(1), dgx, G, w.w_ih, In, dx_accumulate ? T(1) : T(0),
         dx, In);
  }
}

template <typename T>
Dir<T> dir_weights(const std::vector<at::Tensor>& w, int d) {
  const bool has_bias = w[4 * d + 2].numel() > 0;
  return Dir<T>{w[4 * d].data_ptr<T>(), w[4 * d + 1].data_ptr<T>(),
                has_bias ? w[4 * d + 2].data_ptr<T>() : nullptr,
                has_bias ? w[4 * d + 3].data_ptr<T>() : nullptr};
}

int saved_per_dir(int64_t mode) { return mode == LSTM ? 4 : 2; }

// Forward of one layer, all directions. x (T, B, I); h0, c0 (D, B, H) (c0 empty unless LSTM);
// w = per direction (w_ih, w_hh, b_ih, b_hh), empty biases when the layer has none;
// lengths (B) int64 or empty. Returns out (T, B, D*H), h_n, c_n, then what the backward needs.
std::vector<at::Tensor> layer_forward(int64_t mode, const at::Tensor& x, const at::Tensor& h0,
                                      const at::Tensor& c0, const std::vector<at::Tensor>& w,
                                      const at::Tensor& lengths, bool keep) {
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const int D = int(w.size() / 4), Hn = h0.size(2);
  auto opt = x.options();
  at::Tensor out = at::empty({Tn, Bn, D * Hn}, opt);
  at::Tensor hT = h0.clone(at::MemoryFormat::Contiguous);
  at::Tensor cT = mode == LSTM ? c0.clone(at::MemoryFormat::Contiguous) : at::Tensor();
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{out, hT, mode == LSTM ? cT : at::empty({0}, opt)};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_forward", [&] {
    for (int d = 0; d < D; ++d) {
      scalar_t* c = mode == LSTM ? cT.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn : nullptr;
      forward_dir<scalar_t>(mode, Tn, Bn, In, Hn, x.data_ptr<scalar_t>(), dir_weights<scalar_t>(w, d),
                            len, d == 1, hT.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn, c,
                            out.data_ptr<scalar_t>() + int64_t(d) * Hn, D * Hn, res, keep, opt);
    }
  });
  return res;
}

// Backward of one layer. saved = what layer_forward returned after (out, h_n, c_n).
// Returns dx (empty unless need_dx), dh0, dc0 (empty unless LSTM), then per direction
// (dw_ih, dw_hh, db_ih, db_hh) with empty biases when the layer has none.
std::vector<at::Tensor> layer_backward(int64_t mode, const at::Tensor& x,
                                       const std::vector<at::Tensor>& w, const at::Tensor& lengths,
                                       const std::vector<at::Tensor>& saved,
                                       const at::Tensor& dout_in, const at::Tensor& dhT,
                                       const at::Tensor& dcT, bool need_dx) {
  const int Tn = x.size(0), Bn = x.size(1), In = x.size(2);
  const int D = int(w.size() / 4), Hn = w[1].size(1);
  auto opt = x.options();
  at::Tensor dout = dout_in.contiguous();
  at::Tensor dh = dhT.clone(at::MemoryFormat::Contiguous);
  at::Tensor dc = mode == LSTM ? dcT.clone(at::MemoryFormat::Contiguous) : at::empty({0}, opt);
  at::Tensor dx = need_dx ? at::empty({Tn, Bn, In}, opt) : at::empty({0}, opt);
  const int64_t* len = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  std::vector<at::Tensor> res{dx, dh, dc};
  const int k = saved_per_dir(mode);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_backward", [&] {
    for (int d = 0; d < D; ++d) {
      const bool has_bias = w[4 * d + 2].numel() > 0;
      at::Tensor dw_ih = at::empty_like(w[4 * d]), dw_hh = at::empty_like(w[4 * d + 1]);
      at::Tensor db_ih = has_bias ? at::empty_like(w[4 * d + 2]) : at::empty({0}, opt);
      at::Tensor db_hh = has_bias ? at::empty_like(w[4 * d + 3]) : at::empty({0}, opt);
      scalar_t* c = mode == LSTM ? dc.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn : nullptr;
      backward_dir<scalar_t>(
          mode, Tn, Bn, In, Hn, x.data_ptr<scalar_t>(), dir_weights<scalar_t>(w, d), len, d == 1,
          saved.data() + d * k, dout.data_ptr<scalar_t>() + int64_t(d) * Hn, D * Hn,
          dh.data_ptr<scalar_t>() + int64_t(d) * Bn * Hn, c,
          need_dx ? dx.data_ptr<scalar_t>() : nullptr, d > 0, dw_ih.data_ptr<scalar_t>(),
          dw_hh.data_ptr<scalar_t>(), has_bias ? db_ih.data_ptr<scalar_t>() : nullptr,
          has_bias ? db_hh.data_ptr<scalar_t>() : nullptr, opt);
      res.insert(res.end(), {dw_ih, dw_hh, db_ih, db_hh});
    }
  });
  return res;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit fused CPU engine: RNN/LSTM/GRU layer forward and hand-written BPTT.";
  m.def("layer_forward", &layer_forward, "forward of one layer, all directions",
        py::call_guard<py::gil_scoped_release>());
  m.def("layer_backward", &layer_backward, "BPTT backward of one layer, all directions",
        py::call_guard<py::gil_scoped_release>());
}
