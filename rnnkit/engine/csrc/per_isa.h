// The one place that compiles a kernel file's row code once per instruction set: inside
// namespaces isa_avx512, isa_avx2 and isa_base, each under its own `#pragma GCC target`, so a
// portable build (no -march=native) still runs the machine's vector width; isa.h picks the set at
// run time. A kernel file defines RK_ISA_BODY (the header holding its row code, which includes
// the activations and the cell files it needs) and includes this file inside its anonymous
// namespace. The body sees RK_INLINE, RK_VEC_BYTES (vector width) and RK_ACC_VECS (accumulator
// vectors of the step product).
#ifndef RK_INLINE
#define RK_INLINE inline __attribute__((always_inline))
#endif

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
namespace isa_avx512 {
#define RK_VEC_BYTES 64
#define RK_ACC_VECS 16
#include RK_ISA_BODY
#undef RK_VEC_BYTES
#undef RK_ACC_VECS
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2")
namespace isa_avx2 {
#define RK_VEC_BYTES 32
#define RK_ACC_VECS 8
#include RK_ISA_BODY
#undef RK_VEC_BYTES
#undef RK_ACC_VECS
}  // namespace isa_avx2
#pragma GCC pop_options

namespace isa_base {
#define RK_VEC_BYTES 16
#define RK_ACC_VECS 8
#include RK_ISA_BODY
#undef RK_VEC_BYTES
#undef RK_ACC_VECS
}  // namespace isa_base

#undef RK_ISA_BODY
