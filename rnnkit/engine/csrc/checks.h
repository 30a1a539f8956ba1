// Argument checks of the engine's entry points (both extensions): every shape, dtype, device,
// length and size the kernels rely on is checked before any raw pointer is taken, and a bad one
// raises ValueError (TORCH_CHECK_VALUE) naming the entry point, the argument, what it received
// and what was expected. The kernels never trust their caller: a wrong weight shape would
// otherwise read or write past a buffer.
//
// Cost: O(1) per tensor (a few integer compares; a message is only built on failure), plus
// O(B) for the lengths' values.
//
// Shape alphabet: T time, B batch, I input size, H hidden size, G gate width, D directions.

#pragma once

#include <torch/extension.h>

#include "cells.h"

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace rk_checks {

// "(4096, 1)"; "(5,)" for one dimension, as Python prints a shape.
inline std::string shape_str(at::IntArrayRef s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

inline std::string shape_str(std::initializer_list<int64_t> s) {
  return shape_str(at::IntArrayRef(s.begin(), s.size()));
}

// What the sizes were derived from, for the messages: "for mode LSTM with hidden_size 1024
// (from h0) and input_size 4 (from x)". Built only when a check fails.
struct Where {
  const char* fn;       // the entry point
  const char* mode;     // the cell, in words
  const char* h_from;   // the argument hidden_size was read from
  int64_t H, I;

  std::string context() const {
    return std::string(" for mode ") + mode + " with hidden_size " + std::to_string(H) +
           " (from " + h_from + ") and input_size " + std::to_string(I) + " (from x)";
  }
};

// " of the reverse direction" for direction 1.
inline const char* dir_str(int d) { return d == 1 ? " of the reverse direction" : ""; }

// A defined CPU tensor of the dtype the call runs in.
inline void on_cpu_as(const char* fn, const at::Tensor& t, const char* name, const char* dir,
                      at::ScalarType dtype) {
  TORCH_CHECK_VALUE(t.defined(), fn, ": ", name, dir, " is undefined, expected a tensor");
  TORCH_CHECK_VALUE(t.device().is_cpu(), fn, ": ", name, dir, " is on device ", t.device(),
                    ", expected a CPU tensor (the fused engine runs on CPU)");
  TORCH_CHECK_VALUE(t.scalar_type() == dtype, fn, ": ", name, dir, " has dtype ",
                    t.scalar_type(), ", expected ", dtype, " (the dtype of x)");
}

// Exactly the shape `want`.
inline void shaped(const Where& w, const at::Tensor& t, const char* name, const char* dir,
                   std::initializer_list<int64_t> want) {
  TORCH_CHECK_VALUE(t.sizes() == at::IntArrayRef(want.begin(), want.size()), w.fn, ": ", name,
                    dir, " has shape ", shape_str(t.sizes()), ", expected ", shape_str(want),
                    w.context());
}

// A tensor the kernels read: CPU, x's dtype, exactly the shape `want`.
inline void tensor(const Where& w, const at::Tensor& t, const char* name, const char* dir,
                   at::ScalarType dtype, std::initializer_list<int64_t> want) {
  on_cpu_as(w.fn, t, name, dir, dtype);
  shaped(w, t, name, dir, want);
}

// What a forward saved for its backward: as `tensor`, and contiguous (the backward reads it
// in place; the forward makes every one contiguous).
inline void saved(const Where& w, const at::Tensor& t, const char* name, const char* dir,
                  at::ScalarType dtype, std::initializer_list<int64_t> want) {
  tensor(w, t, name, dir, dtype, want);
  TORCH_CHECK_VALUE(t.is_contiguous(), w.fn, ": the saved tensor ", name, dir,
                    " is not contiguous; pass what the forward returned");
}

// An optional tensor: empty (absent) or `tensor`. Returns whether it is present.
inline bool optional(const Where& w, const at::Tensor& t, const char* name, const char* dir,
                     at::ScalarType dtype, std::initializer_list<int64_t> want) {
  if (t.defined() && t.numel() == 0 && t.dim() <= 1) return false;
  tensor(w, t, name, dir, dtype, want);
  return true;
}

// A 0/1 mask (uint8): empty (no mask) or exactly `want`.
inline void mask(const Where& w, const at::Tensor& t, const char* name,
                 std::initializer_list<int64_t> want) {
  if (t.defined() && t.numel() == 0 && t.dim() <= 1) return;
  on_cpu_as(w.fn, t, name, "", at::kByte);
  shaped(w, t, name, "", want);
}

// x: a CPU float32/float64 (T, B, I) tensor with T, B, I >= 1. The kernels index with int
// and call BLAS with int sizes, so T * B rows and every size must fit an int.
inline void input(const char* fn, const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.defined(), fn, ": x is undefined, expected a (T, B, I) tensor");
  TORCH_CHECK_VALUE(x.device().is_cpu(), fn, ": x is on device ", x.device(),
                    ", expected a CPU tensor (the fused engine runs on CPU)");
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, fn,
                    ": x has dtype ", x.scalar_type(), ", expected float32 or float64");
  TORCH_CHECK_VALUE(x.dim() == 3, fn, ": x has shape ", shape_str(x.sizes()),
                    ", expected 3 dimensions (T, B, I)");
  TORCH_CHECK_VALUE(x.size(0) >= 1 && x.size(1) >= 1 && x.size(2) >= 1, fn, ": x has shape ",
                    shape_str(x.sizes()), ", expected (T, B, I) with T, B and I at least 1");
  TORCH_CHECK_VALUE(x.size(0) * x.size(1) <= INT_MAX && x.size(2) <= INT_MAX, fn,
                    ": x has shape ", shape_str(x.sizes()),
                    ", more than the engine's int sizes hold (T * B and I at most ", INT_MAX,
                    ")");
}

// A state-like tensor the hidden size is read from: `dims` dimensions, the last one H >= 1,
// and (H times the widest row the kernels make of it) fitting an int.
inline int64_t hidden_from(const char* fn, const at::Tensor& t, const char* name,
                           const char* expect, int64_t dims, at::ScalarType dtype) {
  on_cpu_as(fn, t, name, "", dtype);
  TORCH_CHECK_VALUE(t.dim() == dims && t.size(dims - 1) >= 1, fn, ": ", name, " has shape ",
                    shape_str(t.sizes()), ", expected ", expect);
  const int64_t H = t.size(dims - 1);
  TORCH_CHECK_VALUE(H <= INT_MAX / 16, fn, ": ", name, " has shape ", shape_str(t.sizes()),
                    ", hidden size ", H, " is more than the engine's int sizes hold");
  return H;
}

// lengths: empty (every sequence has T steps) or an int64 CPU (B,) tensor with every value in
// [1, T]. O(B): the only check that reads data.
inline void lengths(const char* fn, const at::Tensor& len, int64_t B, int64_t T) {
  TORCH_CHECK_VALUE(len.defined(), fn, ": lengths is undefined, expected an empty tensor or (B,)");
  if (len.numel() == 0 && len.dim() <= 1) return;
  TORCH_CHECK_VALUE(len.device().is_cpu() && len.scalar_type() == at::kLong, fn,
                    ": lengths is ", len.scalar_type(), " on ", len.device(),
                    ", expected an int64 CPU tensor");
  TORCH_CHECK_VALUE(len.dim() == 1 && len.size(0) == B, fn, ": lengths has shape ",
                    shape_str(len.sizes()), ", expected ", shape_str({B}),
                    " (one length per sequence of x)");
  const at::Tensor dense = len.contiguous();  // the caller reads its own contiguous copy
  const int64_t* v = dense.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK_VALUE(v[b] >= 1 && v[b] <= T, fn, ": lengths[", b, "] is ", v[b],
                      ", expected a length in [1, T] with T = ", T, " (the steps of x)");
}

// The (G, I) input and (G, H) recurrent weights and the (G,) biases of one direction (the
// biases both present or both empty). Returns whether the biases are present.
inline bool gate_weights(const Where& w, at::ScalarType dtype, const at::Tensor& w_ih,
                         const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh,
                         int64_t G, int d) {
  TORCH_CHECK_VALUE(G <= INT_MAX, w.fn, ": gate width ", G, " is more than the engine's int "
                    "sizes hold", w.context());
  tensor(w, w_ih, "weight_ih", dir_str(d), dtype, {G, w.I});
  tensor(w, w_hh, "weight_hh", dir_str(d), dtype, {G, w.H});
  const bool has_ih = optional(w, b_ih, "bias_ih", dir_str(d), dtype, {G});
  const bool has_hh = optional(w, b_hh, "bias_hh", dir_str(d), dtype, {G});
  TORCH_CHECK_VALUE(has_ih == has_hh, w.fn, ": bias_ih", dir_str(d), " is ",
                    has_ih ? "given" : "empty", " but bias_hh is ", has_hh ? "given" : "empty",
                    ", expected both or neither");
  return has_ih;
}

// The tensors, contiguous (the kernels take raw pointers with dense strides); a contiguous
// tensor is passed through (a reference count), another is copied.
inline std::vector<at::Tensor> dense(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back(t.contiguous());
  return out;
}

// ---- the layer kernels (layer_kernels.cpp) ------------------------------------------------------

inline const char* fused_mode_name(int64_t mode) {
  static const char* names[] = {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"};
  return names[mode];
}

// Gates per mode: RNN 1, LSTM 4, GRU 3.
inline int64_t fused_gates(int64_t mode) {
  return mode == rk_cells::LSTM ? 4 : mode == rk_cells::GRU ? 3 : 1;
}

inline void fused_mode(const char* fn, int64_t mode) {
  TORCH_CHECK_VALUE(mode >= 0 && mode <= 3, fn, ": mode is ", mode,
                    ", expected 0 (RNN_TANH), 1 (RNN_RELU), 2 (LSTM) or 3 (GRU)");
}

// The weights of every direction: 4 tensors per direction, one or two directions, matching
// `w` (the hidden and input sizes). Returns D.
inline int fused_weights(const Where& w, int64_t mode, at::ScalarType dtype,
                         const std::vector<at::Tensor>& ws) {
  TORCH_CHECK_VALUE(ws.size() == 4 || ws.size() == 8, w.fn, ": got ", ws.size(),
                    " weight tensors, expected 4 per direction (weight_ih, weight_hh, bias_ih, "
                    "bias_hh; empty biases for none) for 1 or 2 directions");
  const int D = int(ws.size() / 4);
  const int64_t G = fused_gates(mode) * w.H;
  for (int d = 0; d < D; ++d)
    gate_weights(w, dtype, ws[4 * d], ws[4 * d + 1], ws[4 * d + 2], ws[4 * d + 3], G, d);
  return D;
}

// layer_forward(mode, x, h0, c0, weights, lengths, keep): x (T, B, I); h0, c0 (D, B, H), c0
// read only for LSTM; weights 4 per direction; lengths empty or (B,) in [1, T].
inline void layer_forward(int64_t mode, const at::Tensor& x, const at::Tensor& h0,
                          const at::Tensor& c0, const std::vector<at::Tensor>& ws,
                          const at::Tensor& len) {
  const char* fn = "layer_forward";
  fused_mode(fn, mode);
  input(fn, x);
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2);
  // An empty h0 (and c0) stands for a zero state; H then comes from weight_hh (G, H).
  const bool zero_state = h0.defined() && h0.dim() == 1 && h0.numel() == 0;
  int64_t H;
  if (zero_state) {
    on_cpu_as(fn, h0, "h0", "", x.scalar_type());
    TORCH_CHECK_VALUE(!ws.empty() && ws[1].defined() && ws[1].dim() == 2, fn,
                      ": h0 is empty (a zero state), so weight_hh must be a (G, H) tensor");
    H = hidden_from(fn, ws[1], "weight_hh", "(G, H)", 2, x.scalar_type());
  } else {
    H = hidden_from(fn, h0, "h0", "(D, B, H)", 3, x.scalar_type());
  }
  const Where w{fn, fused_mode_name(mode), zero_state ? "weight_hh" : "h0", H, I};
  const int D = fused_weights(w, mode, x.scalar_type(), ws);
  if (!zero_state) shaped(w, h0, "h0", "", {D, B, H});
  if (mode == rk_cells::LSTM && zero_state) {
    TORCH_CHECK_VALUE(c0.defined() && c0.numel() == 0, fn, ": h0 is empty (a zero state) but "
                      "c0 has shape ", shape_str(c0.sizes()),
                      ", expected both empty or both (D, B, H)");
  } else if (mode == rk_cells::LSTM) {
    tensor(w, c0, "c0", "", x.scalar_type(), {D, B, H});
  }
  lengths(fn, len, B, T);
}

// layer_backward(mode, x, weights, lengths, saved, dout, dh_n, dc_n, need_dx): as the
// forward, with H from dh_n (D, B, H); saved = what layer_forward returned after its first
// three outputs (per direction: act (T, B, G) (GRU: (T, B, 4H)), h_prev (T, B, H), and for
// LSTM c_prev, tanh_c (T, B, H)); dout (T, B, D*H); dc_n (D, B, H) for LSTM.
inline void layer_backward(int64_t mode, const at::Tensor& x, const std::vector<at::Tensor>& ws,
                           const at::Tensor& len, const std::vector<at::Tensor>& sv,
                           const at::Tensor& dout, const at::Tensor& dh_n,
                           const at::Tensor& dc_n) {
  const char* fn = "layer_backward";
  fused_mode(fn, mode);
  input(fn, x);
  const at::ScalarType dt = x.scalar_type();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2);
  const int64_t H = hidden_from(fn, dh_n, "dh_n", "(D, B, H)", 3, dt);
  const Where w{fn, fused_mode_name(mode), "dh_n", H, I};
  const int D = fused_weights(w, mode, dt, ws);
  shaped(w, dh_n, "dh_n", "", {D, B, H});
  if (mode == rk_cells::LSTM) tensor(w, dc_n, "dc_n", "", dt, {D, B, H});
  tensor(w, dout, "dout", "", dt, {T, B, D * H});
  lengths(fn, len, B, T);
  const size_t k = mode == rk_cells::LSTM ? 4 : 2;
  TORCH_CHECK_VALUE(sv.size() == k * D, fn, ": got ", sv.size(), " saved tensors, expected ",
                    k * D, " (", k, " per direction", w.context(),
                    "); pass what layer_forward returned after its first three outputs");
  const int64_t act = mode == rk_cells::GRU ? 4 * H : fused_gates(mode) * H;
  for (int d = 0; d < D; ++d) {
    saved(w, sv[k * d], "activations", dir_str(d), dt, {T, B, act});
    saved(w, sv[k * d + 1], "h_prev", dir_str(d), dt, {T, B, H});
    if (mode == rk_cells::LSTM) {
      saved(w, sv[k * d + 2], "c_prev", dir_str(d), dt, {T, B, H});
      saved(w, sv[k * d + 3], "tanh_c", dir_str(d), dt, {T, B, H});
    }
  }
}

}  // namespace rk_checks
