#!/usr/bin/env bash
# The test command (the README's; .ci/run runs it unchanged). Installs what is missing, then
# runs five stages, each timed:
#   1 build (warnings are errors: -DQP_WERROR=ON) and ctest, all but the emulator's variants
#   2 the emulator's variants (ctest -L emu_variant: reverse/shuffle schedules, classic/bps1)
#   3 the CPU suites again under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/;
#     test_cuda_backend_emu and its parts run in stage 1 only, see stage_sanitizers)
#   4 each fuzz target for a bounded time (QP_FUZZ_SECONDS, default 45; scripts/fuzz.sh)
#   5 the build matrix: gcc and clang Release (build-release-gcc/, build-release-clang/:
#     -Werror, no CUDA backend; the gcc one also as if no CUDA Toolkit were installed) and a
#     configure without Boost.Context, libmicrohttpd and jansson, each checked for the message
#     that says what is off
# and ends with the stage times and every skipped test's reason (tests that need a GPU or the
# real model skip, saying why).
#   QP_TEST_QUICK=1    stage 1 only (a developer's quick loop)
#   QP_TEST_DRY_RUN=1  print the stages' commands (on stderr) instead of running them (tests/cli)
# Extra arguments go to stage 1's cmake configure. Warnings are errors here, for developers and
# CI; a user's build (scripts/build.sh, scripts/run.sh) never fails on one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QP_BUILD_DIR:-$root/build}
asan=${QP_ASAN_BUILD_DIR:-$root/build-asan}
quick=${QP_TEST_QUICK:-0}
dry=${QP_TEST_DRY_RUN:-0}
jobs=$(nproc)
junit=$(mktemp -d) # the ctest runs' JUnit files, for the skipped tests' reasons
stages=()          # "N name|time" of each stage run or skipped
current=           # the stage running now
t_start=$SECONDS

# Every build here goes through ccache (scripts/deps.sh installs it), sharing ~/.cache/ccache
# across checkouts, as CI systems keep a compiler cache: a clean clone recompiles only what its
# commit changed. Paths are hashed relative to the checkout (CCACHE_BASEDIR, CCACHE_NOHASHDIR), so
# two clones at different paths share entries. A cold cache costs nothing but the first run's
# time: on the 2-core CI machine a clean clone took 36 min at 3529d1d without the cache (most of it
# the emulator's kernels compiled twice, as C++ and under ASan) and 20 min at 9ccd910 with it
# warm. QP_CCACHE=0 builds without it.
# (scripts/build.sh, which stage 1 runs before any configure, installs it with the rest.)
if [ "${QP_CCACHE:-1}" = 1 ]; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache \
    CMAKE_CUDA_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
fi

# run COMMAND...: runs it, or prints it under QP_TEST_DRY_RUN=1.
run() {
  if [ "$dry" = 1 ]; then printf '+ %s\n' "$*" >&2; else "$@"; fi
}

# expect_message LOG TEXT: the configure output in LOG says TEXT.
expect_message() {
  if [ "$dry" = 1 ]; then printf '+ grep -F %q %s\n' "$2" "$1" >&2; return; fi
  grep -qF -- "$2" "$1" || { echo "test: $1 does not say '$2':" >&2; cat "$1" >&2; return 1; }
}

minutes() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# stage N NAME FUNCTION [ARG...]: runs FUNCTION ARG... as stage N, timed; QP_TEST_QUICK=1 skips
# the stages after 1.
stage() {
  local n=$1 name=$2 fn=$3
  shift 3
  if [ "$quick" = 1 ] && [ "$n" -gt 1 ]; then
    stages+=("$n $name|skipped (QP_TEST_QUICK=1)")
    return
  fi
  echo "== stage $n: $name =="
  current="$n $name"
  local t0=$SECONDS
  "$fn" "$@"
  current=
  stages+=("$n $name|$(minutes $((SECONDS - t0)))")
}

# At exit, also after a failure: the stage times and the skipped tests' reasons.
summary() {
  local rc=$?
  echo "== stage times =="
  local s
  for s in "${stages[@]}"; do printf '  %-34s %s\n' "${s%%|*}" "${s#*|}"; done
  [ -n "$current" ] && printf '  %-34s FAILED\n' "$current"
  printf '  %-34s %s\n' "total" "$(minutes $((SECONDS - t_start)))"
  if [ "$dry" != 1 ]; then
    echo "== skipped tests =="
    python3 "$root/scripts/ctest-skips.py" "ctest=$junit/ctest.xml" "emulator variants=$junit/emu.xml" \
      "sanitizers=$junit/asan.xml" || true
  fi
  rm -rf "$junit"
  exit $rc
}
trap summary EXIT

stage_build_and_ctest() {
  run "$root/scripts/build.sh" -DQP_WERROR=ON "$@"
  run ctest --test-dir "$build" --output-on-failure -j"$jobs" -LE emu_variant \
    --output-junit "$junit/ctest.xml"
}

stage_emulator_variants() {
  run ctest --test-dir "$build" --output-on-failure -j"$jobs" -L emu_variant \
    --output-junit "$junit/emu.xml"
}

stage_sanitizers() {
  run cmake -S "$root" -B "$asan" -DQP_SANITIZE=ON -DQP_CUDA=OFF -DQP_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  run cmake --build "$asan" -j"$jobs" >/dev/null
  # test_cuda_backend_emu and its parts (_batch, _kernels) run in stage 1 only: whole models
  # through the emulated kernels took over 15 minutes under ASan on the 2-core CI machine, and
  # what they add under the sanitizers is covered here by test_gpu_ops_emu (every kernel,
  # emulated) and by the CPU backend's whole-model tests of the same runtime code
  # (test_runtime_synth, test_batch_synth, test_perplexity_synth)
  run env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$asan" --output-on-failure -j"$jobs" -L "cpu|fuzz" -LE emu_variant \
    -E '^test_cuda_backend_emu(_batch|_kernels)?$' --output-junit "$junit/asan.xml"
}

stage_fuzzers() {
  run "$root/scripts/fuzz.sh"
}

# Release with each compiler (-O3 warnings differ from RelWithDebInfo's -O2, and between
# compilers), then the two configurations a user without Boost.Context or without the CUDA
# Toolkit gets. These builds make the libraries and the two executables, what a user builds,
# not the tests: building everything (the emulator's kernels compiled as C++ above all) took
# ~90 s more per build on the 2-core CI machine, and the tests' code is built with -Werror in
# stages 1 and 3.
matrix_targets=(--target qplan qrun)
stage_build_matrix() {
  local cc log
  for cc in gcc clang; do
    local dir=$root/build-release-$cc cxx=g++ nocuda=()
    [ $cc = clang ] && cxx=clang++
    # the gcc build is also the build of a machine without the CUDA Toolkit: one build less
    [ $cc = gcc ] && nocuda=(-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON)
    echo "build matrix: $cc Release${nocuda:+, no CUDA Toolkit}"
    log=$junit/release-$cc.log
    run env CC=$cc CXX=$cxx cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DQP_WERROR=ON \
      -DQP_CUDA=OFF "${nocuda[@]}" >"$log"
    if [ $cc = gcc ]; then
      expect_message "$log" "qplan: CUDA backend disabled (QP_CUDA=OFF)"
      expect_message "$log" "qplan: no CUDA Toolkit headers: the CPU emulator of the CUDA kernels (tests/kemu) is off"
    fi
    run cmake --build "$dir" -j"$jobs" "${matrix_targets[@]}" >/dev/null
  done
  # the same configure as without libmicrohttpd and jansson: pkg-config sees libyaml and pcre2 only
  echo "build matrix: no Boost.Context, no libmicrohttpd, no jansson (configure)"
  log=$junit/noboost.log
  local pc=$junit/pkgconfig
  run mkdir -p "$pc"
  run cp "$(pkg-config --variable=pcfiledir yaml-0.1)/yaml-0.1.pc" \
    "$(pkg-config --variable=pcfiledir libpcre2-8)/libpcre2-8.pc" "$pc"
  run env PKG_CONFIG_LIBDIR="$pc" cmake -S "$root" -B "$root/build-noboost" \
    -DCMAKE_DISABLE_FIND_PACKAGE_boost_context=ON >"$log"
  expect_message "$log" "qplan: Boost.Context not found (Debian: libboost-context-dev): the CPU emulator of the CUDA kernels"
  expect_message "$log" "qplan: qrun --serve OFF: pkg-config finds no libmicrohttpd (Debian: libmicrohttpd-dev) nor jansson (Debian: libjansson-dev)"
}

stage 1 "build and ctest" stage_build_and_ctest "$@"
stage 2 "emulator variants" stage_emulator_variants
stage 3 "sanitizers (ASan + UBSan)" stage_sanitizers
stage 4 "fuzzers" stage_fuzzers
stage 5 "build matrix" stage_build_matrix
