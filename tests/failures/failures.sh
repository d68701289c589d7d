#!/usr/bin/env bash
# failures.sh — failure behaviour of the built tools, run as a user runs them.
#   failures.sh BUILD_DIR CASE
# Each CASE (one ctest test, tests/failures.cmake) feeds qplan broken inputs and checks that
# the tool fails the way a user needs: a non-zero exit that is not a crash (1 or 2, never a
# signal), one clear message on stderr that names the file and the problem, nothing on
# stdout, and no output file (nor a temporary one) left behind. Files live in a fresh folder
# under BUILD_DIR, removed at the end.
set -uo pipefail
build=$1
case_name=$2
qplan=$build/compiler/qplan
work=$(mktemp -d "$build/failures_${case_name}.XXXXXX")
failures=0
checks=0
cleanup() {
  [ -d "$work/full" ] && umount "$work/full" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# expect_fail DESCRIPTION WANT_SUBSTRING COMMAND...: runs COMMAND in $work; it must exit 1 or 2
# with WANT_SUBSTRING in its stderr and nothing on stdout.
expect_fail() {
  local what=$1 want=$2
  shift 2
  checks=$((checks + 1))
  (cd "$work" && "$@") >"$work/out.txt" 2>"$work/err.txt"
  local rc=$?
  local msg
  msg=$(cat "$work/err.txt")
  if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
    fail "$what: exit status $rc (want 1 or 2; >128 is a crash): $msg"
    return
  fi
  if [[ "$msg" != *"$want"* ]]; then
    fail "$what: message '$msg' does not contain '$want'"
    return
  fi
  if [ -s "$work/out.txt" ]; then
    fail "$what: wrote to stdout on failure: $(head -c 200 "$work/out.txt")"
    return
  fi
  echo "ok: $what: $(grep -v '^$' "$work/err.txt" | tail -1)"
}

# expect_no_file PATH: neither PATH nor a temporary PATH.tmp.* exists.
expect_no_file() {
  checks=$((checks + 1))
  if [ -e "$1" ]; then fail "$1 was left behind"; fi
  if compgen -G "$1.tmp.*" >/dev/null; then fail "temporary file $(compgen -G "$1.tmp.*") left"; fi
}

# A tiny synthetic Qwen2 model (2 layers, 64 wide) and its plan.
synth() { # NAME N_FF [SEED]
  "$qplan" synth --arch qwen2 --n-layer 2 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff "$2" \
    --n-vocab 300 --seed "${3:-1}" -o "$work/$1" >/dev/null || { echo "FAIL: synth $1"; exit 1; }
}
compile_ok() { # MODEL PLAN
  "$qplan" compile "$work/$1" -o "$work/$2" >/dev/null || { echo "FAIL: compile $1"; exit 1; }
}

# put_bytes FILE OFFSET HEX: overwrite bytes at OFFSET with the bytes of HEX ("ffff...").
put_bytes() {
  printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# Both tools on one broken model: inspect fails, compile fails and leaves no plan.
both_fail() { # FILE WANT
  expect_fail "inspect $1" "$2" "$qplan" inspect "$1"
  expect_fail "compile $1" "$2" "$qplan" compile "$1" -o out.yaml
  expect_no_file "$work/out.yaml"
}

case_gguf_corrupt() {
  synth m.gguf 128
  local size
  size=$(stat -c %s "$work/m.gguf")
  "$qplan" header "$work/m.gguf" -o "$work/h.gguf" >/dev/null || fail "qplan header"
  local hsize
  hsize=$(stat -c %s "$work/h.gguf")
  # Truncations: empty, inside the magic, inside the counts, inside the metadata, inside the
  # tensor table, at the end of the header (no data), one byte short of the data.
  for cut in 0 3 12 200 1000 $((hsize - 40)) "$hsize" $((size - 1)); do
    head -c "$cut" "$work/m.gguf" >"$work/cut$cut.gguf"
    both_fail "cut$cut.gguf" "cut$cut.gguf: "
  done
  # The specific messages of a few of them.
  expect_fail "empty file" "cut0.gguf: " "$qplan" inspect cut0.gguf
  expect_fail "data cut short" "extends past the end" "$qplan" inspect cut$((size - 1)).gguf
  # Corruptions at fixed header offsets: magic, version, tensor count, key count, the first
  # key's length (GGUF v3: magic u32, version u32, n_tensors u64, n_kv u64, then key string).
  cp "$work/m.gguf" "$work/magic.gguf" && put_bytes "$work/magic.gguf" 0 "4c4c5546" # "LLUF"
  both_fail magic.gguf "magic.gguf: "
  cp "$work/m.gguf" "$work/version.gguf" && put_bytes "$work/version.gguf" 4 "63000000"
  both_fail version.gguf "version.gguf: "
  cp "$work/m.gguf" "$work/ntensors.gguf" && put_bytes "$work/ntensors.gguf" 8 "ffffffffffffff7f"
  both_fail ntensors.gguf "ntensors.gguf: "
  cp "$work/m.gguf" "$work/nkv.gguf" && put_bytes "$work/nkv.gguf" 16 "ffffffffffffffff"
  both_fail nkv.gguf "nkv.gguf: "
  cp "$work/m.gguf" "$work/keylen.gguf" && put_bytes "$work/keylen.gguf" 24 "00000000000000f0"
  both_fail keylen.gguf "keylen.gguf: "
  # Random garbage of a model's size, and a text file.
  head -c "$size" /dev/urandom >"$work/random.gguf"
  both_fail random.gguf "random.gguf: "
  echo "just some text" >"$work/text.gguf"
  both_fail text.gguf "text.gguf: "
  # A synthetic header without data is a model only with --header-only.
  expect_fail "header-only file to compile" "h.gguf: " "$qplan" compile h.gguf -o out.yaml
  expect_no_file "$work/out.yaml"
}

# A plan edited by hand into inconsistency: qplan validate refuses it naming file and line.
case_plan_edited() {
  synth m.gguf 128
  compile_ok m.gguf p.yaml
  edit() { # NAME SED_EXPR WANT
    sed "$2" "$work/p.yaml" >"$work/$1.yaml"
    if cmp -s "$work/p.yaml" "$work/$1.yaml"; then
      fail "edit $1: sed '$2' changed nothing (plan format changed?)"
      return
    fi
    expect_fail "validate edited plan $1" "$3" "$qplan" validate "$1.yaml"
    expect_fail "validate edited plan $1 with its model" "$1.yaml:" "$qplan" validate "$1.yaml" m.gguf
  }
  edit arena-small 's/arena_bytes: [0-9]*/arena_bytes: 4096/' "arena-small.yaml:"
  edit kv-offset '/^kv_cache:/,/^weights:/s/v_offset: [0-9]*/v_offset: 256/' "kv-offset.yaml:"
  edit misaligned '0,/\(- {name: [a-z_]*, dtype: f32, shape: \[[0-9, ]*\], offset: [0-9]*\)/s//\11/' \
    "not a multiple of the alignment"
  edit unknown-op '0,/op: embed/s//op: embedd/' "embedd"
  edit unknown-buffer '0,/out: x$/s//out: xx/' "no buffer named 'xx'"
  edit missing-key '/^  header_hash:/d' "header_hash"
  edit weight-bytes '0,/bytes: \([0-9]*\), from/s//bytes: 1\1, from/' "!= rows * row bytes"
  edit version 's/^qplan: 3$/qplan: 4/' "version"
  edit heads 's/^  n_head: 4$/  n_head: 3/' "n_head"
  edit tabs '0,/^hparams:/s/^hparams:/hparams:\n\tarch: x/' "tabs.yaml:"
  edit not-yaml '1s/^/{{{ /' "YAML error"
  # Semantic damage the plan alone cannot show: it validates on its own; with its model qplan
  # validate refuses it, naming the line and what the model needs.
  semantic() { # NAME SED_EXPR WANT
    sed "$2" "$work/p.yaml" >"$work/$1.yaml"
    if cmp -s "$work/p.yaml" "$work/$1.yaml"; then
      fail "edit $1: sed '$2' changed nothing (plan format changed?)"
      return
    fi
    checks=$((checks + 1))
    "$qplan" validate "$work/$1.yaml" >/dev/null 2>&1 || fail "edit $1: the plan alone should validate"
    expect_fail "validate $1 with its model" "$3" "$qplan" validate "$1.yaml" m.gguf
    checks=$((checks + 1))
    grep -Eq "^qplan validate: $1\.yaml:[0-9]+: " "$work/err.txt" || fail "edit $1: the message names no line"
  }
  semantic bias-deleted '0,/^      bias: /{/^      bias: /d}' "bias: the plan has none, the model has a bias"
  semantic weight-swapped '0,/weights: \[blk.0.attn_output.weight\]/s//weights: [blk.1.attn_output.weight]/' \
    "weights: the plan says [blk.1.attn_output.weight], the model needs [blk.0.attn_output.weight]"
  semantic rope-base '0,/rope_base: 1e+06, layer: 1}/s//rope_base: 10000, layer: 1}/' \
    "params.rope_base: the plan says 10000, the model needs 1000000"
  semantic eps '/^hparams:/,/^limits:/s/^  eps: .*/  eps: 1e-05/' "hparams.eps: the plan says 1e-05"
  semantic kv-layer '0,/head_dim: 16, layer: 1}/s//head_dim: 16, layer: 0}/' "params.layer: the plan says 0, the model needs 1"
}

# A plan paired with another model: refused naming both files.
case_plan_other_model() {
  synth a.gguf 128
  synth b.gguf 192
  compile_ok a.gguf a.yaml
  expect_fail "plan of a.gguf with b.gguf" "b.gguf" "$qplan" validate a.yaml b.gguf
  expect_fail "plan of a.gguf with b.gguf names the plan's model" "a.gguf" "$qplan" validate a.yaml b.gguf
  # The same file cut short: its size no longer matches.
  head -c 100000 "$work/a.gguf" >"$work/a-cut.gguf"
  expect_fail "plan of a.gguf with a truncated copy" "a-cut.gguf" "$qplan" validate a.yaml a-cut.gguf
  # Same shape, other seed: same header and tensor table, so the same identity; the plan
  # describes it exactly (weights differ only in value) and is accepted. This is the
  # documented limit of the identity check (docs/errors.md).
  synth c.gguf 128 7
  checks=$((checks + 1))
  if ! "$qplan" validate "$work/a.yaml" "$work/c.gguf" >/dev/null 2>&1; then
    fail "a same-shape model was refused (the identity is the header hash; see docs/errors.md)"
  fi
}

# Missing files, folders where files belong, and unwritable outputs.
case_missing_files() {
  synth m.gguf 128
  compile_ok m.gguf p.yaml
  expect_fail "inspect missing model" "nothere.gguf: " "$qplan" inspect nothere.gguf
  expect_fail "compile missing model" "nothere.gguf: " "$qplan" compile nothere.gguf -o out.yaml
  expect_no_file "$work/out.yaml"
  expect_fail "validate missing plan" "nothere.yaml: " "$qplan" validate nothere.yaml
  expect_fail "validate with missing model" "nothere.gguf" "$qplan" validate p.yaml nothere.gguf
  mkdir -p "$work/adir.gguf"
  expect_fail "inspect a folder" "adir.gguf: " "$qplan" inspect adir.gguf
  expect_fail "compile a folder" "adir.gguf: " "$qplan" compile adir.gguf -o out.yaml
  expect_fail "validate a folder" "adir.gguf: not a regular file" "$qplan" validate adir.gguf
  # Unwritable outputs (the tests run as root, which ignores permission bits: use a path
  # under a folder that does not exist, and /proc, where nobody may create files).
  expect_fail "compile into a missing folder" "nodir/out.yaml" "$qplan" compile m.gguf -o nodir/out.yaml
  expect_fail "compile into /proc" "/proc/qplan-test.yaml" "$qplan" compile m.gguf -o /proc/qplan-test.yaml
  expect_fail "compile onto a folder" "adir.gguf" "$qplan" compile m.gguf -o adir.gguf
  expect_no_file "$work/adir.gguf/out.yaml"
  expect_fail "synth into a missing folder" "nodir/s.gguf" "$qplan" synth --arch qwen2 --n-layer 1 \
    --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 --n-vocab 300 -o nodir/s.gguf
  expect_fail "header into /proc" "/proc/h.gguf" "$qplan" header m.gguf -o /proc/h.gguf
  # A permission error where it is enforced (not as root).
  if [ "$(id -u)" != 0 ]; then
    mkdir "$work/ro" && chmod 555 "$work/ro"
    expect_fail "compile into a read-only folder" "Permission denied" "$qplan" compile m.gguf -o ro/out.yaml
    chmod 755 "$work/ro"
  fi
}

# Disk full while writing a plan: the write fails with a clear message, and neither a partial
# plan nor a temporary file is left; a plan already at that path is left as it was. A small
# tmpfs when we may mount one (root), else a file size limit (SIGXFSZ ignored, so write()
# fails with EFBIG) — the same path through the writer either way.
case_disk_full() {
  synth m.gguf 128
  mkdir "$work/full"
  local how limit
  if mount -t tmpfs -o size=8k qplan-test "$work/full" 2>/dev/null; then
    how="tmpfs of 8 KiB"
    limit=":" # the disk itself is full
  else
    how="ulimit -f 4 (4 KiB)"
    limit="trap '' XFSZ; ulimit -f 4"
  fi
  local want="No space left on device|File too large"
  run_limited() { bash -c "$limit; exec $*"; }
  # onto an existing plan: the write fails, the old plan stays as it was
  echo "old plan" >"$work/full/p.yaml"
  expect_fail "compile onto a full disk ($how)" "write failed" \
    run_limited "'$qplan' compile m.gguf -o full/p.yaml"
  checks=$((checks + 1))
  grep -Eq "$want" "$work/err.txt" || fail "no errno text in: $(cat "$work/err.txt")"
  checks=$((checks + 1))
  [ "$(cat "$work/full/p.yaml")" = "old plan" ] || fail "the old plan was changed ($how)"
  checks=$((checks + 1))
  compgen -G "$work/full/p.yaml.tmp.*" >/dev/null && fail "temporary file left ($how)"
  rm -f "$work/full/p.yaml"
  # a new plan: nothing left at all
  expect_fail "compile to a new file ($how)" "write failed" \
    run_limited "'$qplan' compile m.gguf -o full/p2.yaml"
  expect_no_file "$work/full/p2.yaml"
  # a synthetic model is written the same way (atomically)
  expect_fail "synth onto a full disk ($how)" "full/s.gguf" run_limited "'$qplan' synth --arch \
    qwen2 --n-layer 1 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 --n-vocab 300 -o full/s.gguf"
  expect_no_file "$work/full/s.gguf"
  checks=$((checks + 1))
  [ -z "$(ls -A "$work/full")" ] || fail "files left on the full disk: $(ls -A "$work/full")"
}

# Not a failure: the tools' ordinary runs end to end (synth, header, inspect, compile,
# validate; qrun --device cpu when it is built), each checked for success. In the ASan stage
# of scripts/test.sh (detect_leaks=1) this is the LeakSanitizer-clean run of qplan compile and
# of a short CPU generation: a leak or an ASan/UBSan report makes the tool exit non-zero.
case_clean_runs() {
  ok() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    checks=$((checks + 1))
    if (cd "$work" && "$@") >"$work/out.txt" 2>"$work/err.txt"; then
      echo "ok: $what"
    else
      fail "$what: exit $?: $(tail -5 "$work/err.txt")"
    fi
  }
  ok "synth" "$qplan" synth --arch qwen2 --n-layer 2 --n-embd 64 --n-head 4 --n-head-kv 2 \
    --n-ff 128 --n-vocab 300 -o m.gguf
  ok "header" "$qplan" header m.gguf -o h.gguf
  ok "synth --like" "$qplan" synth --like h.gguf -o like.gguf --seed 3
  ok "inspect" "$qplan" inspect m.gguf
  ok "inspect --header-only" "$qplan" inspect --header-only h.gguf
  ok "compile" "$qplan" compile m.gguf -o p.yaml
  ok "compile --no-fuse all --kv-type f32 --ctx 64" "$qplan" compile m.gguf -o p2.yaml \
    --no-fuse all --kv-type f32 --ctx 64
  ok "validate with the model" "$qplan" validate p.yaml m.gguf
  # Written files are ordinary files (0666 less the umask), not mkstemp's 0600.
  local want
  want=$(printf '%o' $((0666 & ~0$(umask))))
  for f in m.gguf h.gguf p.yaml; do
    checks=$((checks + 1))
    [ "$(stat -c %a "$work/$f")" = "$want" ] || fail "$f has mode $(stat -c %a "$work/$f"), want $want"
  done
  local qrun=$build/runtime/qrun
  if [ -x "$qrun" ]; then
    ok "qrun --device cpu" "$qrun" p.yaml -m m.gguf --device cpu -p "Hello" -n 8 --temp 0
  else
    echo "note: qrun is not built yet: the CPU generation part is not run"
  fi
}

# ---- qrun (registered when runtime/main.c is built) ----
qrun=$build/runtime/qrun

# stdout of the last command is valid UTF-8 (never raw bytes of a broken character).
expect_utf8_out() {
  checks=$((checks + 1))
  iconv -f UTF-8 -t UTF-8 "$work/out.txt" >/dev/null 2>&1 || fail "$1: stdout is not valid UTF-8"
}

# qrun refuses plans it cannot trust: edited into inconsistency, another model, missing files.
case_qrun_refuses() {
  synth m.gguf 128
  synth b.gguf 192
  compile_ok m.gguf p.yaml
  # an arena that holds the step state (16 bytes + 16 per chunk row) but not the KV cache
  sed 's/arena_bytes: [0-9]*/arena_bytes: 16384/' "$work/p.yaml" >"$work/edited.yaml"
  expect_fail "qrun edited plan" "edited.yaml:$(grep -n '^kv_cache:' "$work/p.yaml" | cut -d: -f1): kv_cache" \
    "$qrun" edited.yaml -m m.gguf --device cpu -p hi -n 4 --seed 1
  sed 's/^  n_head: 4$/  n_head: 3/' "$work/p.yaml" >"$work/heads.yaml"
  expect_fail "qrun edited plan (heads)" "heads.yaml:" "$qrun" heads.yaml -m m.gguf --device cpu -p hi -n 4
  expect_fail "qrun plan with another model" "b.gguf" "$qrun" p.yaml -m b.gguf --device cpu -p hi -n 4
  expect_fail "qrun plan with another model names the plan's" "m.gguf" "$qrun" p.yaml -m b.gguf --device cpu -p hi -n 4
  expect_fail "qrun missing plan" "nothere.yaml" "$qrun" nothere.yaml --device cpu -p hi -n 4
  expect_fail "qrun missing model" "nothere.gguf" "$qrun" p.yaml -m nothere.gguf --device cpu -p hi -n 4
  expect_fail "qrun missing prompt file" "nothere.txt" "$qrun" p.yaml -m m.gguf --device cpu -f nothere.txt
  expect_fail "qrun plan folder" "adir" bash -c "mkdir -p adir && exec '$qrun' adir --device cpu -p hi"
  # The plan's model not beside it and not in the search path: the message says so.
  mkdir -p "$work/elsewhere" && cp "$work/p.yaml" "$work/elsewhere/p.yaml"
  expect_fail "qrun plan without its model" "m.gguf" \
    env QP_MODEL= HOME="$work/nohome" "$qrun" elsewhere/p.yaml --device cpu -p hi -n 4
  expect_fail "qrun truncated model" "elsewhere/m.gguf" bash -c "head -c 100000 m.gguf > elsewhere/m.gguf && \
    exec '$qrun' elsewhere/p.yaml --device cpu -p hi -n 4"
}

# Absurd -n / -c and other numbers: a clear message and exit 2 (1 for a context beyond the
# plan's, which only the plan can tell).
case_qrun_args() {
  synth m.gguf 128
  "$qplan" compile "$work/m.gguf" -o "$work/p.yaml" --ctx 64 >/dev/null || fail "compile"
  local a
  for a in "-n -5" "-n -2147483649" "-n 99999999999" "-n abc" "-n 1e3" "-n ''" "-c -1" \
           "-c 99999999999999999999" "-c abc" "-c 12x" "--temp abc" "--top-k -3" "--seed abc" "--seed -1" \
           "--repeat-last-n 9999999"; do
    expect_fail "qrun $a" "qrun: ${a%% *}" bash -c "exec '$qrun' p.yaml -m m.gguf --device cpu -p hi $a"
  done
  expect_fail "qrun -c beyond the plan" "64" "$qrun" p.yaml -m m.gguf --device cpu -p hi -c 100000
  expect_fail "qrun --top-p 0" "top-p" "$qrun" p.yaml -m m.gguf --device cpu -p hi --top-p 0 -n 2
  expect_fail "qrun -n without value" "-n" "$qrun" p.yaml -m m.gguf --device cpu -p hi -n
  expect_fail "qrun unknown option" "--frobnicate" "$qrun" p.yaml --frobnicate
  expect_fail "qrun --device nonsense" "nonsense" "$qrun" p.yaml -m m.gguf --device nonsense -p hi -n 2
}

# A full context: generation stops cleanly (exit 0, the reason on stderr) without writing past
# the KV cache; a prompt longer than the context is refused before any work.
case_qrun_context_full() {
  synth m.gguf 128
  "$qplan" compile "$work/m.gguf" -o "$work/p.yaml" --ctx 64 >/dev/null || fail "compile"
  checks=$((checks + 1))
  (cd "$work" && "$qrun" p.yaml -m m.gguf --device cpu -p "Hello" -n 1000 -c 16 --seed 1 \
     --temp 1 --top-k 0 --top-p 1 --min-p 0) >"$work/out.txt" 2>"$work/err.txt"
  local rc=$?
  if [ $rc -ne 0 ]; then
    fail "context full: exit $rc: $(cat "$work/err.txt")"
  elif ! grep -q "context is full (16 positions): stopped cleanly" "$work/err.txt" &&
       ! grep -q "stop: end of generation" "$work/err.txt"; then
    fail "context full: no clean stop reported: $(cat "$work/err.txt")"
  else
    echo "ok: context full: $(grep -o 'generated [0-9]* tokens.*' "$work/err.txt" | head -1)"
  fi
  expect_utf8_out "context full"
  expect_fail "prompt longer than the context" "context" "$qrun" p.yaml -m m.gguf --device cpu \
    -p "a prompt that is much longer than eight positions of context" -c 8 -n 4
}

# Invalid UTF-8 in a prompt (-p, -f): a clear error naming the byte, nothing on stdout.
case_qrun_invalid_utf8() {
  synth m.gguf 128
  compile_ok m.gguf p.yaml
  local bad
  for bad in 'caf\xe9' '\xff\xfe' 'ok \xc3\x28' '\xed\xa0\x80 surrogate' '\xf4\x90\x80\x80' \
             '\xc0\xaf overlong' 'cut \xe2\x82'; do
    expect_fail "qrun -p '$bad'" "not valid UTF-8" bash -c \
      "exec '$qrun' p.yaml -m m.gguf --device cpu -n 4 --seed 1 -p \"\$(printf '$bad')\""
    printf "$bad" >"$work/prompt.txt"
    expect_fail "qrun -f with '$bad'" "not valid UTF-8" \
      "$qrun" p.yaml -m m.gguf --device cpu -n 4 --seed 1 -f prompt.txt
  done
  # Valid UTF-8 of every length, and generated text: valid UTF-8 out.
  checks=$((checks + 1))
  (cd "$work" && "$qrun" p.yaml -m m.gguf --device cpu -n 64 --seed 2 --temp 1 --top-k 0 \
     --top-p 1 --min-p 0 -p "$(printf 'a\xc3\xa9\xe4\xbd\xa0\xf0\x9f\x98\x80')") \
     >"$work/out.txt" 2>"$work/err.txt" || fail "valid UTF-8 prompt refused: $(cat "$work/err.txt")"
  expect_utf8_out "random tokens of a byte-level vocabulary"
}

# SIGINT during generation: a clean stop, exit 130, stdout valid UTF-8 up to the stop, the
# reason on stderr. A model big enough that generation is still running when the signal comes;
# a run that ends by itself first (an end-of-generation token) is retried with another seed.
case_qrun_sigint() {
  "$qplan" synth --arch qwen2 --n-layer 4 --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff 512 \
    --n-vocab 300 --n-ctx 8192 -o "$work/big.gguf" >/dev/null || fail "synth"
  "$qplan" compile "$work/big.gguf" -o "$work/big.yaml" >/dev/null || fail "compile"
  local seed rc interrupted=0
  checks=$((checks + 1))
  for seed in 1 2 3 4 5 6 7 8; do
    (cd "$work" && exec "$qrun" big.yaml --device cpu -p "Once upon a time" -n -1 --seed "$seed" \
       --temp 1 --top-k 0 --top-p 1 --min-p 0) >"$work/out.txt" 2>"$work/err.txt" &
    local pid=$! i
    for i in $(seq 100); do
      [ -s "$work/out.txt" ] && break
      sleep 0.1
    done
    sleep 0.3
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if [ $rc -eq 130 ]; then
      interrupted=1
      break
    fi
    echo "note: seed $seed: exit $rc before the signal ($(grep -o 'stop: .*' "$work/err.txt"))"
  done
  if [ $interrupted = 0 ]; then
    fail "SIGINT: no run was interrupted (last exit $rc): $(tail -3 "$work/err.txt")"
    return
  fi
  grep -q "stop: interrupted\|stop: interrupt" "$work/err.txt" ||
    fail "SIGINT: the stop reason is not reported: $(tail -2 "$work/err.txt")"
  expect_utf8_out "SIGINT"
  echo "ok: SIGINT: exit 130 after $(wc -c <"$work/out.txt") bytes: $(grep -o 'generated [0-9]* tokens' "$work/err.txt")"
}

if ! declare -F "case_$case_name" >/dev/null; then
  echo "failures.sh: unknown case '$case_name'"
  exit 2
fi
"case_$case_name"
echo "$case_name: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
