// What the layer kernels (layer_kernels.cpp) and the direction kernels (direction_kernels.cpp)
// share outside the per-ISA kernels: the BLAS
// that torch ships, row-major GEMM on top of it, MKL's per-thread thread count, and splitting a
// product's columns over torch's threads. Included once, at file scope, after torch's headers.
#pragma once

#include "tuning.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

extern "C" {
// Fortran BLAS shipped inside libtorch_cpu (MKL on x86-64 wheels); LP64 integer interface.
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
// MKL only (weak: absent from other BLAS builds): threads for BLAS calls from this thread,
// Fortran interface (argument by pointer); returns the previous setting (0 = global default).
int mkl_set_num_threads_local_(const int* n) __attribute__((weak));
}

namespace rk_common {

// Row-major C (m, n) = op(A) (m, k) op(B) (k, n) + beta C, through column-major BLAS
// (C^T = op(B)^T op(A)^T).
inline void gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b,
                 int ldb, float beta, float* c, int ldc) {
  const char tA = tb ? 'T' : 'N', tB = ta ? 'T' : 'N';
  const float one = 1.0f;
  sgemm_(&tA, &tB, &n, &m, &k, &one, b, &ldb, a, &lda, &beta, c, &ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  const char tA = tb ? 'T' : 'N', tB = ta ? 'T' : 'N';
  const double one = 1.0;
  dgemm_(&tA, &tB, &n, &m, &k, &one, b, &ldb, a, &lda, &beta, c, &ldc);
}

// ATen's `parallel_for` and `get_num_threads` set OpenMP's thread count on their first call in
// each thread, to MKL's thread count *for the calling thread*. Called inside a BlasThreads scope
// (MKL at one thread), they would pin OpenMP, and with it every later torch op of this thread,
// to one thread (torch.nn ran 2x slower after such a call), and the engine's own teams to none.
// So every entry point calls this first, outside any scope. The flag that records the first
// call is a thread_local inside an inline function, one copy per shared library: this
// extension's copy (lazy_init_num_threads here) does not mark libtorch's, so it also calls
// get_num_threads, which runs libtorch's. (Without that, a script whose first threaded torch
// op of a thread was an engine call below 16M multiply-adds ran every later op on one thread.)
inline void init_threads() {
  at::internal::lazy_init_num_threads();
  (void)at::get_num_threads();
}

// ---- a machine shared with other work -------------------------------------------------------
// When another process keeps a core busy, a thread of a team can lose its core for a whole
// scheduler slice (milliseconds), and its partners wait that long at every step: a GRU at
// B = 1 ran 3.2x slower than on the idle machine. So barrier waits longer than the tuning's
// contended_wait_us (three in one region, SpinBarrier) mark the machine contended, and for the
// next contended_backoff_ms every step loop runs on its calling thread (no team, no row split,
// no pipelined backward, no per-step fork-join); then the schedules are tried again.

inline int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline std::atomic<int64_t>& contended_until_us() {
  static std::atomic<int64_t> until{0};
  return until;
}

// True while the step loops should stay on one thread (see above).
inline bool contended() {
  const int64_t until = contended_until_us().load(std::memory_order_relaxed);
  return until != 0 && now_us() < until;
}

inline void mark_contended() {
  contended_until_us().store(now_us() + 1000 * rk_tuning::current.contended_backoff_ms,
                             std::memory_order_relaxed);
}

// One BLAS thread for calls below `limit` multiply-adds (waking a team costs more than it
// saves, and on a busy machine its spinning steals the core), restored on scope exit.
struct BlasThreads {
  int saved = -1;
  BlasThreads(int64_t macs, int64_t limit) {
    const int one = 1;
    if (mkl_set_num_threads_local_ && macs < limit) saved = mkl_set_num_threads_local_(&one);
  }
  ~BlasThreads() {
    if (saved >= 0) mkl_set_num_threads_local_(&saved);
  }
};

#include "contention.h"  // StallWatch, SerialWhileContended, SplitWatch

// Elements of a (K, N) matrix packed in panels for the step product (step_mm_packed.h): K rows
// of N rounded up to a vector of the widest instruction set (64 bytes).
inline int64_t packed_elems(int K, int N, int elem_bytes) {
  const int vl = 64 / elem_bytes;
  return int64_t(K) * ((N + vl - 1) / vl * vl);
}

// Runs fn(n0, n1) over the columns [0, N) of a product of `macs` multiply-adds: on the calling
// thread below `min_macs` (or with one thread, or inside a parallel region), else split over
// torch's threads in blocks of 128 columns (64 for narrow products), so that every thread runs
// the register-blocked kernel at full width.
template <typename F>
void split_columns(int N, int64_t macs, int64_t min_macs, const F& fn) {
  const int width = N >= 256 ? 128 : 64;
  const int blocks = (N + width - 1) / width;
  if (blocks < 2 || macs < min_macs || at::get_num_threads() < 2 || at::in_parallel_region() ||
      contended()) {
    fn(0, N);
    return;
  }
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    fn(int(b0) * width, std::min(N, int(b1) * width));
  });
}

// Runs fn(b0, b1, thread) over the batch rows [0, B) of a step's row pass of `elems` elements:
// as fn(0, B, 0) on the calling thread below `min_elems` (or with one thread, or inside a
// parallel region), else split over torch's threads (one fork-join).
template <typename F>
void split_rows(int B, int64_t elems, int64_t min_elems, const F& fn) {
  if (B < 2 || elems < min_elems || at::get_num_threads() < 2 || at::in_parallel_region() ||
      contended()) {
    fn(0, B, 0);
    return;
  }
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    fn(int(b0), int(b1), at::get_thread_num());
  });
}

// ---- a cache of large buffers ----------------------------------------------------------------
// A layer call's (T, B, *) buffers (the input products, what the backward keeps, the gate
// gradients) run to tens of megabytes. Freed, glibc hands blocks this large back to the kernel
// (above 32 MB always, smaller ones when the top of the heap is trimmed), and the next call
// takes a page fault for every 4 KB it touches again: 10% of a (64, 100, 512) LSTM training
// step here, and the input product ran 25% slower into fresh memory than into reused memory.
// Buffers of at least kPoolMinBytes (64 KB, which also takes in the thread teams' per-call
// packed weights and work space) therefore come from this cache: a freed block waits for the
// next request of its size class (sizes rounded up to 1/16 of their power of two), and the
// blocks waiting total at most `limit` bytes (RNNKIT_ENGINE_CACHE_MB, default 1024; 0 turns
// the cache off); `release` frees them all.
class BufferPool {
 public:
  static constexpr size_t kPoolMinBytes = size_t(1) << 16;

  static BufferPool& get() {
    static BufferPool* pool = new BufferPool();  // never destroyed: tensors may outlive exit
    return *pool;
  }

  // An uninitialised tensor of `sizes`, from the cache when large enough.
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& opt) {
    int64_t numel = 1;
    for (const int64_t n : sizes) numel *= n;
    const size_t bytes = size_t(numel) * opt.dtype().itemsize();
    if (bytes < kPoolMinBytes || limit_ == 0) return at::empty(sizes, opt);
    const size_t size = size_class(bytes);
    void* block = take(size);
    if (!block) block = std::aligned_alloc(64, size);
    TORCH_CHECK(block, "rnnkit engine: out of memory allocating ", size, " bytes");
    return at::from_blob(block, sizes, [size](void* p) { BufferPool::get().give(p, size); },
                         opt);
  }

  // Frees every waiting block; returns the bytes freed.
  size_t release() {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t freed = waiting_;
    for (auto& [size, block] : free_) std::free(block);
    free_.clear();
    waiting_ = 0;
    return freed;
  }

  size_t waiting_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_;
  }

  // Sets the limit of waiting bytes (freeing what is over it); returns the old limit.
  size_t set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t old = limit_;
    limit_ = bytes;
    trim();
    return old;
  }

 private:
  BufferPool() {
    const char* mb = std::getenv("RNNKIT_ENGINE_CACHE_MB");
    limit_ = (mb && *mb ? size_t(std::max(0L, std::atol(mb))) : size_t(1024)) << 20;
  }

  // Rounds up to a multiple of 1/16 of the largest power of two not above `bytes`.
  static size_t size_class(size_t bytes) {
    size_t top = size_t(1) << (63 - __builtin_clzll(bytes));
    const size_t step = std::max<size_t>(top / 16, 64);
    return (bytes + step - 1) / step * step;
  }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end()) return nullptr;
    void* block = it->second;
    free_.erase(it);
    waiting_ -= size;
    return block;
  }

  void give(void* block, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.emplace(size, block);
    waiting_ += size;
    trim();
  }

  // Frees the largest waiting blocks until the rest fit the limit (called with the lock held).
  void trim() {
    while (waiting_ > limit_ && !free_.empty()) {
      auto last = std::prev(free_.end());
      std::free(last->second);
      waiting_ -= last->first;
      free_.erase(last);
    }
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // waiting blocks by size
  size_t waiting_ = 0;
  size_t limit_ = 0;
};

inline at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& opt) {
  return BufferPool::get().empty(sizes, opt);
}

// M (K, N) packed in panels by a kernel table's `pack` (step_mm_packed.h), in a pooled buffer;
// m_nk: M given as W (N, K) with rows ldm apart (torch's weight layout), else as M.
template <typename T>
at::Tensor pack_panels(void (*pack)(int, int, const T*, int, bool, T*), int K, int N,
                       const T* m, int ldm, bool m_nk, const at::TensorOptions& opt) {
  at::Tensor packed = pooled_empty({packed_elems(K, N, int(sizeof(T)))}, opt);
  pack(K, N, m, ldm, m_nk, packed.data_ptr<T>());
  return packed;
}

// ---- a thread team that shares every step of a layer call ----------------------------------
// At small batches a step is a few microseconds of work, too little for a fork-join per step.
// A team instead enters one OpenMP region for the whole time loop: each thread owns a slice of
// the hidden units (its columns of every gate, in the step product and in the elementwise
// pass), and the threads meet at one spinning barrier per step.

// Spins until ready() (a flag another thread of the region sets): a step is microseconds, far
// below the cost of sleeping; yields the core after ~4000 pauses (0.1-0.2 ms) in case the other
// thread is descheduled on a busy machine. Returns the microseconds spent yielding (0 when the
// spins sufficed).
template <typename F>
int64_t wait_until(const F& ready) {
  int64_t yield_start = 0;
  for (int spins = 0; !ready(); ++spins) {
    if (spins < 4000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      if (yield_start == 0) yield_start = now_us();
      std::this_thread::yield();
    }
  }
  return yield_start == 0 ? 0 : now_us() - yield_start;
}

// Sense-counting barrier for the `n` threads of one region (waiting as wait_until does).
class SpinBarrier {
 public:
  void wait(int n) {
    const int gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      const int64_t now = now_us(), last = last_us_.load(std::memory_order_relaxed);
      if (last > 0 && now - last < shortest_us_.load(std::memory_order_relaxed))
        shortest_us_.store(now - last, std::memory_order_relaxed);
      last_us_.store(now, std::memory_order_relaxed);
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(gen + 1, std::memory_order_release);
      return;
    }
    const int64_t waited =
        wait_until([&] { return generation_.load(std::memory_order_acquire) != gen; });
    // The first barrier of a region also waits for threads waking from sleep (on a virtual
    // machine an idle core can take milliseconds to wake), and one long wait can be an
    // interrupt: only the third long wait after the first barrier counts as contention. A
    // long wait is over contended_wait_us and over twice the shortest time between two
    // barriers so far: a team's step of the (64, 512) LSTM takes ~0.3 ms, and the partner of a
    // thread a little slower than it waited over 0.5 ms on an idle machine.
    if (gen > 0 && waited > rk_tuning::current.contended_wait_us &&
        waited > 2 * shortest_us_.load(std::memory_order_relaxed) &&
        long_waits_.fetch_add(1, std::memory_order_relaxed) == 2)
      mark_contended();
  }

 private:
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<int> generation_{0};
  std::atomic<int> long_waits_{0};
  std::atomic<int64_t> last_us_{0};          // when the last barrier opened
  std::atomic<int64_t> shortest_us_{INT64_MAX / 4};  // the shortest step between two barriers
};

// Thread p's slice [u0, u0 + n) of H units, in whole chunks of `align` units (one vector).
struct UnitSlice {
  int u0, n;
};
inline UnitSlice unit_slice(int H, int p, int threads, int align) {
  const int chunks = (H + align - 1) / align;
  const int c0 = int(int64_t(chunks) * p / threads), c1 = int(int64_t(chunks) * (p + 1) / threads);
  const int u0 = std::min(H, c0 * align), u1 = std::min(H, c1 * align);
  return {u0, u1 - u0};
}

// How many threads a team for a step loop would have: torch's thread count, at most one per
// `min_units` hidden units and at most 8 (every step ends at a barrier of the whole team; only
// teams of two have been timed), and 1 (no team) inside a parallel region.
inline int team_size(int H, int min_units) {
  if (at::in_parallel_region()) return 1;
  return std::max(1, std::min({at::get_num_threads(), H / min_units, 8}));
}

// Runs body(p, threads, barrier) on each thread p of a team of up to `threads` threads (fewer
// if OpenMP grants fewer; `threads` in the body is the real count).
template <typename F>
void run_team(int threads, const F& body) {
  SpinBarrier barrier;
#pragma omp parallel num_threads(threads)
  body(omp_get_thread_num(), omp_get_num_threads(), barrier);
}

// The pipelined backward of both kernel families: thread 0 runs the step loop, step(i) for i
// in [0, steps); thread 1 follows `chunk` steps behind with part(s0, s1), the parameter
// gradients of steps [s0, s1) (on one BLAS thread), on a core that would otherwise wait. With
// one thread granted, the same thread does both in turn.
template <typename Step, typename Part>
void run_pipelined(int steps, int chunk, const Step& step, const Part& part) {
  std::atomic<int> done{0};  // steps finished by thread 0
  run_team(2, [&](int p, int threads, SpinBarrier&) {
    if (p == 0) {
      for (int i = 0; i < steps; ++i) {
        step(i);
        done.store(i + 1, std::memory_order_release);
      }
    }
    if (p == threads - 1) {
      BlasThreads one(0, 1);
      for (int s0 = 0; s0 < steps; s0 += chunk) {
        const int s1 = std::min(steps, s0 + chunk);
        (void)wait_until([&] { return done.load(std::memory_order_acquire) >= s1; });
        part(s0, s1);
      }
    }
  });
}

}  // namespace rk_common
