#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every ctest suite; then the
# CPU suites again under AddressSanitizer + UndefinedBehaviorSanitizer, then each fuzz target
# for a bounded time (QP_FUZZ_SECONDS, default 45). Tests that need a GPU or the real model
# skip with the reason printed.
#   QP_TEST_QUICK=1  only the first stage (a developer's quick loop)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" "$@"
build=${QP_BUILD_DIR:-$root/build}
(cd "$build" && ctest --output-on-failure -j"$(nproc)")
[ "${QP_TEST_QUICK:-0}" = 1 ] && exit 0

# (the CUDA kernels on the CPU emulator included, once each: its extra configurations, label
# emu_variant, ran above)
echo "== sanitizers: ASan + UBSan build of the CPU suites =="
asan=${QP_ASAN_BUILD_DIR:-$root/build-asan}
cmake -S "$root" -B "$asan" -DQP_SANITIZE=ON -DQP_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$asan" -j"$(nproc)" >/dev/null
(cd "$asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$(nproc)" -L "cpu|fuzz" -LE emu_variant)

echo "== fuzzers =="
"$root/scripts/fuzz.sh"
