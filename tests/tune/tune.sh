#!/usr/bin/env bash
# qplan tune's machinery on the CPU backend (tests/tune.cmake): the CPU runs every kernel as its
# op's reference, so the timings say nothing, but everything else is the real path: candidates
# from the registry, each run against the CPU op and timed, the fastest written into a copy of the
# plan, its memory planned again, the end-to-end benchmark of both plans and the revert of a
# slower program, the atomic write, the table. The tuned plan must validate against its model and
# generate exactly what the untuned one does. Then the failures: no plan, a missing file, a GPU
# that is not there, a bad option.
#   tune.sh BUILD_DIR
set -u
build=$1
qplan=$build/compiler/qplan
qrun=$build/runtime/qrun
work=$(mktemp -d "${TMPDIR:-/tmp}/qp-tune.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$qplan" synth --arch qwen2 --n-layer 2 --n-embd 128 --n-head 2 --n-head-kv 1 --n-ff 256 --n-vocab 300 \
  --seed 5 -o "$work/m.gguf" > /dev/null || { echo "FAIL: synth"; exit 1; }
"$qplan" compile "$work/m.gguf" -o "$work/p.yaml" --ctx 128 --chunk 16 > /dev/null || { echo "FAIL: compile"; exit 1; }
cp "$work/p.yaml" "$work/orig.yaml"

args=(--device cpu --reps 1 --bench-reps 1 --bench-pp 16 --bench-tg 4)
if "$qplan" tune "$work/p.yaml" -o "$work/t.yaml" "${args[@]}" > "$work/out" 2> "$work/err"; then
  ok "qplan tune on the cpu exits 0"
else
  bad "qplan tune failed: $(tail -3 "$work/err")"
fi
grep -q "nodes changed" "$work/out" && grep -q "end to end on cpu: pp16" "$work/out" &&
  grep -q "wrote $work/t.yaml" "$work/out" && ok "the table, the end-to-end line and the output" ||
  bad "tune's report lacks its table: $(cat "$work/out")"
grep -q "prefill: 13 of 13 nodes" "$work/err" && ok "progress on stderr" || bad "no progress lines"
cmp -s "$work/p.yaml" "$work/orig.yaml" && ok "-o leaves the input plan alone" || bad "-o changed the input"
grep -q "card: cpu" "$work/t.yaml" && ok "the tuned plan records the card" || bad "no card in the tuned plan"
ls "$work" | grep -q "tune.yaml" && bad "the benchmark's temporary plan was left behind" || ok "no temporary left"
if "$qplan" validate "$work/t.yaml" "$work/m.gguf" > /dev/null 2> "$work/verr"; then
  ok "the tuned plan validates against its model"
else
  bad "the tuned plan does not validate: $(cat "$work/verr")"
fi
a=$("$qrun" "$work/p.yaml" -m "$work/m.gguf" --device cpu --temp 0 -p "abc" -n 12 2> /dev/null | od -An -tx1)
b=$("$qrun" "$work/t.yaml" -m "$work/m.gguf" --device cpu --temp 0 -p "abc" -n 12 2> /dev/null | od -An -tx1)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "tuned and untuned plans generate the same tokens" || bad "outputs differ: '$a' vs '$b'"

# without -o the plan itself is replaced (atomically: nothing else is left in the folder)
"$qplan" tune "$work/p.yaml" --no-bench "${args[@]}" > /dev/null 2>&1 &&
  grep -q "card: cpu" "$work/p.yaml" && ok "without -o the plan is tuned in place" || bad "in-place tune"

# failures: a clear message, exit 1 or 2, nothing written
expect_fail() {
  local what=$1 want=$2; shift 2
  rm -f "$work/x.yaml"
  "$qplan" tune "$@" > "$work/fout" 2> "$work/ferr"
  local rc=$?
  if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then bad "$what: exit $rc"; return; fi
  grep -q -- "$want" "$work/ferr" || { bad "$what: message lacks '$want': $(cat "$work/ferr")"; return; }
  [ -e "$work/x.yaml" ] && { bad "$what: wrote an output"; return; }
  ok "$what: $(head -1 "$work/ferr")"
}
expect_fail "no plan" "no plan given"
expect_fail "missing plan" "cannot open" "$work/nope.yaml" -o "$work/x.yaml" --device cpu
expect_fail "bad option" "unknown option" "$work/orig.yaml" --frobnicate
expect_fail "bad count" "is not a count" "$work/orig.yaml" --reps -3
if [ ! -e /dev/nvidia0 ]; then
  expect_fail "cuda without a GPU" "CUDA" "$work/orig.yaml" -o "$work/x.yaml"
fi
echo "tune: $fails failure(s)"
[ $fails -eq 0 ]
