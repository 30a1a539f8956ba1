#!/usr/bin/env bash
# The engine's tests under AddressSanitizer: both C++ extensions built with
# -fsanitize=address (RNNKIT_SANITIZE=address, a cache folder of its own, so sanitized and normal
# builds never mix), libasan preloaded into the (unsanitized) Python, the engine's buffer cache
# off so that every buffer is allocated at its exact size and an overflow hits a redzone (a
# cached block is rounded up to its size class, whose slack ASan cannot see).
#
#   bench/asan.sh                       # the engine, variant and layer test files
#   bench/asan.sh --durations=10        # the same, with pytest options
#   bench/asan.sh tests/test_engine.py  # other test files
#
# ASAN_OPTIONS: detect_leaks=0 (CPython and torch keep memory to exit on purpose, which
# LeakSanitizer would report at exit); halt_on_error=1 with abort_on_error=1, so that a finding
# fails the run.
# The first run builds the two sanitized extensions (a few minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

libasan="$(gcc -print-file-name=libasan.so)"
if [[ ! -e "$libasan" ]]; then
  echo "asan.sh: gcc has no libasan.so (install libasan of the gcc that builds the engine)" >&2
  exit 2
fi

# The test of the buffer cache itself needs the cache: it runs apart, with the cache on.
cache_test=tests/test_engine.py::test_cached_buffers_are_reused_and_results_stay_right
paths=0
for arg in "$@"; do [[ "$arg" == -* ]] || paths=1; done
if [[ $paths -eq 0 ]]; then  # only options given: the default test files
  set -- tests/test_engine*.py tests/test_variants*.py tests/test_layers*.py \
    --deselect "$cache_test" "$@"
else
  cache_test=""
fi

export RNNKIT_SANITIZE=address
export RNNKIT_ENGINE_CACHE_MB="${RNNKIT_ENGINE_CACHE_MB:-0}"  # 0: no cache; set it to test one
export PYTHONMALLOC=malloc  # Python's own allocations through ASan's malloc too
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

# libstdc++ right after libasan: the python binary does not link it, and without it loaded at
# start ASan's __cxa_throw interceptor finds no real __cxa_throw, so the first C++ exception
# (every argument check that fails) aborts with "CHECK failed: ... real___cxa_throw".
export LD_PRELOAD="$libasan $(gcc -print-file-name=libstdc++.so)"
# Build (or load) both sanitized extensions first, so that a build failure is one clear error.
python -c "
from rnnkit.engine import load_extension
assert load_extension() is not None, 'build failed'
"
python -m pytest -q -p no:cacheprovider "$@"
if [[ -n "$cache_test" ]]; then
  RNNKIT_ENGINE_CACHE_MB=1024 python -m pytest -q -p no:cacheprovider "$cache_test"
fi
