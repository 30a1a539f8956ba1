// The engine's tuning: every threshold by which a schedule is chosen, in one structure, read and
// replaced from Python as a dict (`tuning`, `set_tuning`; `rnnkit.engine.tuning` derives the
// defaults from the machine, applies what `rnnkit tune` measured and offers a context manager).
// One instance per process, shared by every kernel; the kernels read it, only the bindings
// write it. "macs" counts multiply-adds.
#pragma once

#include <cstdint>

namespace rk_tuning {

struct Tuning {
  // -- the layer kernels (RNN, LSTM, GRU, all directions in one call) --
  // A whole layer call below this many multiply-adds runs every BLAS call on one thread: on a
  // busy machine waking a thread team costs more than it saves, and its spinning steals the core.
  int64_t serial_layer_macs = int64_t(1) << 24;
  // Per-step BLAS products below this run on one thread (each step is a fork-join); above it,
  // on an idle 2-core machine, threaded steps won (LSTM (64, 100, 512): 0.72x -> 0.91x torch.nn).
  int64_t serial_step_macs = int64_t(1) << 24;
  // Register-blocked step products of at least this many multiply-adds split their columns
  // over torch's threads.
  int64_t parallel_step_macs = int64_t(1) << 19;
  // Batches up to this size use the register-blocked step product instead of BLAS.
  int64_t small_batch = 16;
  // Calls of one or two steps compute products of up to this many rows (the input projection
  // and h W_hh^T) on the kernel that reads torch's (G, K) weight layout (step_mm_nt.h) instead
  // of BLAS, whose set-up cost exceeds such a product (0: always BLAS). On an AMD EPYC Zen 5,
  // one-step layer calls (inference, state given, H = 128-256) ran 1.6-3x faster on the kernel
  // than on MKL from 4 to 64 rows (LSTM H = 128, B = 8: 17.6 against 34.6 us); `rnnkit tune`
  // measures it on the machine at hand.
  int64_t few_step_rows = 64;
  // Calls of one or two steps send their step product to oneDNN (on a weight in its generic
  // layout, made in ~30 us) from this many multiply-adds, where oneDNN is chosen at all
  // (onednn.h; 0: never). Set only where oneDNN has AVX-512 kernels that MKL does not use
  // (rnnkit.engine.tuning.defaults): on an AMD EPYC Zen 5 the (320 x 128) x (128 x 384) step
  // of a beam search's GRU ran ~2x faster there; on a Zen 3 the two libraries ran even.
  int64_t few_step_onednn_macs = int64_t(1) << 22;
  // Batches up to team_batch whose step product has at least team_macs multiply-adds run their
  // step loop on a thread team (one OpenMP region for all steps); 0 macs: every size.
  int64_t team_batch = 16;
  int64_t team_macs = int64_t(1) << 14;
  // Larger batches run on a team (or split by rows) while their step products are at most
  // this. With the weights packed in panels (step_mm_packed.h) the team and the split beat a
  // fork-join per oneDNN product up to the (64, 512) LSTM's 67M on an AMD EPYC Zen 5: (64, 100,
  // 256) LSTM inference 16.7 against 19.1 ms, training 62.9 against 69.1 ms; (64, 100, 512)
  // training 239-243 against 253 ms. (Row-major, BLAS had won from 16M on.)
  int64_t team_large_macs = int64_t(1) << 26;
  // A step loop splits by batch rows when every thread gets at least this many rows (0: never).
  int64_t split_rows = 4;
  // ... and while W_hh^T (H x G) takes at most this many bytes: every thread of a split reads
  // all of it at every step, so it must stay in the core's L2 (0: no limit). Python sets it to
  // the machine's L2 (rnnkit.engine.tuning.defaults): on an AMD EPYC with 512 KB of L2 the
  // split of the (64, 32, 256) LSTM (1 MB of W_hh^T) ran 1.37x slower than the team.
  int64_t split_weight_bytes = 0;
  // Rows of dG per chunk of the pipelined backward's parameter gradients (0: no pipeline).
  int64_t pipeline_rows = 256;
  // Rows of the input projections computed at a time in inference.
  int64_t xp_chunk_rows = 1024;
  // Layer calls below this many multiply-adds (where BLAS runs on one thread and oneDNN is not
  // chosen) compute their weight gradients on the packed step kernel (0: BLAS). On an AMD EPYC
  // Zen 5 MKL's SGEMM ran the plain RNN's (128 x 100) x (100 x 128) gradients at ~80 GFLOP/s
  // (its AVX2 kernels); Python sets 0 on Intel CPUs, where MKL takes its AVX-512 ones.
  int64_t own_grad_macs = int64_t(1) << 24;
  // oneDNN for float32 products: 0 never, 1 when large enough and not on an Intel CPU, 2 always.
  int64_t onednn = 1;
  // Gate elements per step from which a row pass splits its rows over threads.
  int64_t parallel_row_elems = int64_t(1) << 14;

  // -- the direction kernels (any cell, recurrent dropout, zoneout) --
  // Batches from 2 up to direction_team_batch with step products of at least
  // direction_team_macs run a direction's step loop on a thread team.
  int64_t direction_team_batch = 16;
  int64_t direction_team_macs = int64_t(1) << 16;
  // Step products up to this many multiply-adds use the register-blocked kernel, else BLAS.
  int64_t direction_own_step_macs = int64_t(1) << 22;
  // Row passes from this many gate elements split their rows (these rows do more work).
  int64_t direction_parallel_row_elems = int64_t(1) << 12;

  // -- a machine shared with other work (engine_common.h) --
  // A thread that waits this long at a team's barrier means a partner lost its core to another
  // process; then for contended_backoff_ms every step loop runs on one thread.
  int64_t contended_wait_us = 500;
  int64_t contended_backoff_ms = 2000;
};

// The process's tuning (C++17 inline variable: one instance however many files include this).
inline Tuning current;

// Name -> field, for the bindings; the order is the order `tuning()` reports.
struct Field {
  const char* name;
  int64_t Tuning::*member;
};
inline constexpr Field kFields[] = {
    {"serial_layer_macs", &Tuning::serial_layer_macs},
    {"serial_step_macs", &Tuning::serial_step_macs},
    {"parallel_step_macs", &Tuning::parallel_step_macs},
    {"small_batch", &Tuning::small_batch},
    {"few_step_rows", &Tuning::few_step_rows},
    {"few_step_onednn_macs", &Tuning::few_step_onednn_macs},
    {"team_batch", &Tuning::team_batch},
    {"team_macs", &Tuning::team_macs},
    {"team_large_macs", &Tuning::team_large_macs},
    {"split_rows", &Tuning::split_rows},
    {"split_weight_bytes", &Tuning::split_weight_bytes},
    {"pipeline_rows", &Tuning::pipeline_rows},
    {"xp_chunk_rows", &Tuning::xp_chunk_rows},
    {"own_grad_macs", &Tuning::own_grad_macs},
    {"onednn", &Tuning::onednn},
    {"parallel_row_elems", &Tuning::parallel_row_elems},
    {"direction_team_batch", &Tuning::direction_team_batch},
    {"direction_team_macs", &Tuning::direction_team_macs},
    {"direction_own_step_macs", &Tuning::direction_own_step_macs},
    {"direction_parallel_row_elems", &Tuning::direction_parallel_row_elems},
    {"contended_wait_us", &Tuning::contended_wait_us},
    {"contended_backoff_ms", &Tuning::contended_backoff_ms},
};

}  // namespace rk_tuning
