#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz/ and runs each for a
# bounded time over a scratch copy of its checked-in seed corpus. A crash stops the run and
# leaves its input in build-fuzz/crashes/: add it to tests/fuzz/corpus/<target>/ with the fix.
# A dictionary tests/fuzz/<target>.dict, when present, is passed to libFuzzer.
#   QP_FUZZ_SECONDS  seconds per target, the targets at the same time (default 45; run longer by hand)
#   QP_FUZZ_TARGETS  targets to run (default: every tests/fuzz/fuzz_*.c)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
build=${QP_FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${QP_FUZZ_SECONDS:-45}
CC=clang cmake -S "$root" -B "$build" -DQP_FUZZ=ON -DQP_SANITIZE=ON -DQP_CUDA=OFF \
  -DQP_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=${QP_FUZZ_TARGETS:-$(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
for t in $targets; do cmake --build "$build" -j"$(nproc)" --target "fuzz_$t" >/dev/null; done
mkdir -p "$build/crashes"
# run_one TARGET: one libFuzzer run over a scratch copy of the target's corpus; its log in
# build-fuzz/fuzz_TARGET.log. The targets run at the same time (each single-threaded): on CI's
# two cores each gets about 2/3 of a core for the bounded time instead of running one after another.
run_one() {
  local t=$1 work dict=()
  work=$(mktemp -d)
  cp -r "$root/tests/fuzz/corpus/$t/." "$work/"
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  local rc=0
  "$build/tests/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/crashes/${t}-" -print_final_stats=1 "${dict[@]}" "$work" \
    >"$build/fuzz_$t.log" 2>&1 || rc=$?
  rm -rf "$work"
  return $rc
}
declare -A pids
for t in $targets; do
  echo "fuzz: $t for ${secs}s"
  run_one "$t" &
  pids[$t]=$!
done
status=0
for t in $targets; do
  if ! wait "${pids[$t]}"; then
    echo "fuzz: $t FAILED — see $build/fuzz_$t.log and $build/crashes/" >&2
    tail -40 "$build/fuzz_$t.log" >&2
    status=1
  else
    grep -E "^#[0-9]+.*DONE" "$build/fuzz_$t.log" | sed "s/^/fuzz: $t /"
  fi
done
exit $status
