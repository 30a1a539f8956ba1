// The watches that notice a busy neighbour in the schedules whose threads never meet at one of
// our barriers (engine_common.h marks the machine contended; SpinBarrier notices it in the
// teams). Included inside engine_common.h's namespace rk_common, after mark_contended: no
// include guard and no includes.

// The step loops whose steps fork over torch's threads (a BLAS or oneDNN product, a split row
// pass per step) wait inside OpenMP, where no barrier of ours sees a partner that lost its core:
// the (64, 100, 256) LSTM's inference ran 4.9x slower beside a busy process. StallWatch times
// each step (not the input products some steps also make): a step over 4x contended_wait_us
// (a lost core waits out a scheduler slice of milliseconds; an idle machine's first call of a
// shape has slower steps, as oneDNN makes its kernels) and over 4x the loop's fastest step,
// three times in one loop, marks the machine contended; from then on, for
// contended_backoff_ms, SerialWhileContended keeps the calling thread's OpenMP (so oneDNN's
// and ATen's) and MKL products on one thread.
struct StallWatch {
  int64_t best = INT64_MAX, t0 = 0;
  int stalls = 0;
  void start() { t0 = now_us(); }
  void stop() {
    const int64_t d = now_us() - t0;
    best = std::min(best, d);
    if (d > 4 * rk_tuning::current.contended_wait_us && d > 4 * best && ++stalls == 3)
      mark_contended();
  }
};

struct SerialWhileContended {
  int omp_saved = -1, mkl_saved = -1;
  // Call at every step: goes to one thread once the machine is marked contended.
  void update() {
    if (omp_saved >= 0 || !contended() || at::in_parallel_region()) return;
    omp_saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const int one = 1;
    if (mkl_set_num_threads_local_) mkl_saved = mkl_set_num_threads_local_(&one);
  }
  ~SerialWhileContended() {
    if (omp_saved >= 0) omp_set_num_threads(omp_saved);
    if (mkl_saved >= 0) mkl_set_num_threads_local_(&mkl_saved);
  }
};

// A step loop split by batch rows (forward_split, the backward's split, the variants' split):
// each thread runs all steps of its own rows and meets the others only at the end. A thread
// that shared its core with another process took up to twice as long per row as its partner,
// and the (64, 100, 256) LSTM's training step ran 3.4x its idle time. Each thread reports its
// rows and its own start when done (a thread woken late on an idle machine does not count);
// three calls in a row with a thread slower per row than 1.6x the fastest, by more than
// contended_wait_us, mark the machine contended, so later calls run on one thread.
class SplitWatch {
 public:
  static constexpr int kMaxThreads = 8;
  void finished(int p, int rows, int64_t started_us) {
    if (p < 0 || p >= kMaxThreads || rows <= 0) return;
    us_[p].store(now_us() - started_us, std::memory_order_relaxed);
    rows_[p].store(rows, std::memory_order_relaxed);
  }
  ~SplitWatch() {
    int64_t fast_us = 0, slow_us = 0;
    double fast = 0, slow = 0;  // microseconds per row
    for (int p = 0; p < kMaxThreads; ++p) {
      const int rows = rows_[p].load(std::memory_order_relaxed);
      if (rows == 0) continue;
      const int64_t us = us_[p].load(std::memory_order_relaxed);
      const double per_row = double(us) / rows;
      if (fast == 0 || per_row < fast) fast = per_row, fast_us = us;
      if (per_row > slow) slow = per_row, slow_us = us;
    }
    // One such call can be a hiccup of the host (twice in 300 idle calls of the word-LM GRU,
    // by ~0.9 ms): only three in a row mark the machine.
    static std::atomic<int> streak{0};
    const bool lopsided = fast > 0 && slow > 1.6 * fast &&
                          slow_us - fast_us > rk_tuning::current.contended_wait_us;
    if (!lopsided) {
      streak.store(0, std::memory_order_relaxed);
    } else if (streak.fetch_add(1, std::memory_order_relaxed) == 2) {
      streak.store(0, std::memory_order_relaxed);
      mark_contended();
    }
  }

 private:
  std::atomic<int64_t> us_[kMaxThreads] = {};
  std::atomic<int> rows_[kMaxThreads] = {};
};
