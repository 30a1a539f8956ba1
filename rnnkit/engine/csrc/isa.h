// The one rule that picks the instruction set every kernel runs: the best this CPU has
// (AVX-512, AVX2 with FMA, else the SSE2 baseline), capped by RNNKIT_ISA ("avx512", "avx2",
// "base"; tests use it to run the lower sets). rnnkit/engine/_build.py refuses any other value
// before the kernels load. Each kernel file compiles its row loops once per set (in namespaces
// isa_avx512, isa_avx2, isa_base) and takes its table of functions by `chosen()`.
#pragma once

#include <cstdlib>
#include <string>

namespace rk_isa {

enum class Isa { base, avx2, avx512 };

inline Isa chosen() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    const char* env = std::getenv("RNNKIT_ISA");
    const std::string cap = env ? env : "avx512";
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (cap == "avx512" && avx512) return Isa::avx512;
    if ((cap == "avx512" || cap == "avx2") && avx2) return Isa::avx2;
    return Isa::base;
  }();
  return isa;
}

inline const char* name(Isa isa) {
  return isa == Isa::avx512 ? "avx512" : (isa == Isa::avx2 ? "avx2" : "base");
}

}  // namespace rk_isa
