// The engine's one Python module: the layer kernels (layer_kernels.cpp), the direction kernels
// (direction_kernels.cpp), the attention decoder's step (decoder_kernels.cpp), the tuning
// (tuning.h), the instruction set (isa.h) and the buffer cache (engine_common.h).

#include <torch/extension.h>

#include "engine_common.h"
#include "isa.h"
#include "tuning.h"

#include <map>
#include <string>

namespace rk_bind {
void layer_kernels(pybind11::module_& m);
void direction_kernels(pybind11::module_& m);
void decoder_kernels(pybind11::module_& m);
}  // namespace rk_bind

namespace {

pybind11::dict tuning_dict() {
  pybind11::dict d;
  for (const auto& f : rk_tuning::kFields) d[f.name] = rk_tuning::current.*f.member;
  return d;
}

// Sets the named thresholds (all or some); an unknown name or a negative value changes nothing
// and raises ValueError. Returns the whole tuning as it was.
pybind11::dict set_tuning(const std::map<std::string, int64_t>& values) {
  for (const auto& [name, value] : values) {
    bool known = false;
    for (const auto& f : rk_tuning::kFields) known = known || name == f.name;
    if (!known) throw pybind11::value_error("set_tuning: unknown threshold '" + name + "'");
    if (value < 0)
      throw pybind11::value_error("set_tuning: " + name + " must be >= 0, got " +
                                  std::to_string(value));
  }
  pybind11::dict old = tuning_dict();
  for (const auto& [name, value] : values)
    for (const auto& f : rk_tuning::kFields)
      if (name == f.name) rk_tuning::current.*f.member = value;
  return old;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's fused CPU engine: forward and hand-written BPTT of every cell.";
  rk_bind::layer_kernels(m);
  rk_bind::direction_kernels(m);
  rk_bind::decoder_kernels(m);
  m.def("isa", [] { return std::string(rk_isa::name(rk_isa::chosen())); },
        "the instruction set the kernels use");
  m.def("tuning", &tuning_dict, "the thresholds that choose the kernels' schedules (tuning.h)");
  m.def("set_tuning", &set_tuning,
        "sets some thresholds by name (values >= 0); returns the whole tuning as it was");
  m.def("contended", &rk_common::contended,
        "whether the step loops run on one thread for now: a team's barrier wait showed another "
        "process on the cores (engine_common.h)");
  m.def("mark_contended", &rk_common::mark_contended,
        "treat the machine as contended for the tuning's contended_backoff_ms (tests)");
  m.def("release_cache", [] { return rk_common::BufferPool::get().release(); },
        "frees the engine's cached buffers; returns the bytes freed");
  m.def("cache_bytes", [] { return rk_common::BufferPool::get().waiting_bytes(); },
        "bytes of freed buffers the engine keeps for reuse");
  m.def("set_cache_limit",
        [](size_t bytes) { return rk_common::BufferPool::get().set_limit(bytes); },
        "most bytes of freed buffers kept for reuse (0: no cache); returns the old limit");
}
