#!/usr/bin/env bash
# failures.sh — failure behaviour of the built tools, run as a user runs them (issue 9).
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
  mountpoint -q "$work/full" 2>/dev/null && umount "$work/full"
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# expect_fail DESCRIPTION WANT_SUBSTRING COMMAND...: runs COMMAND in $work; it must exit 1 or 2
# with WANT_SUBSTRING in its stderr, at most two lines of stderr, nothing on stdout.
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
  echo "ok: $what: $(head -1 "$work/err.txt")"
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
  edit version 's/^qplan: 1$/qplan: 2/' "version"
  edit heads 's/^  n_head: 4$/  n_head: 3/' "n_head"
  edit tabs '0,/^hparams:/s/^hparams:/hparams:\n\tarch: x/' "tabs.yaml:"
  edit not-yaml '1s/^/{{{ /' "YAML error"
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
  local how
  if mount -t tmpfs -o size=8k qplan-test "$work/full" 2>/dev/null; then
    how="tmpfs of 8 KiB"
    echo "old plan" >"$work/full/p.yaml"
    expect_fail "compile onto a full disk ($how)" "No space left on device" \
      "$qplan" compile m.gguf -o full/p.yaml
  else
    how="ulimit -f 4 (4 KiB)"
    echo "old plan" >"$work/full/p.yaml"
    expect_fail "compile past the file size limit ($how)" "File too large" \
      bash -c "trap '' XFSZ; ulimit -f 4; exec '$qplan' compile m.gguf -o full/p.yaml"
  fi
  checks=$((checks + 1))
  [ "$(cat "$work/full/p.yaml")" = "old plan" ] || fail "the old plan was changed ($how)"
  compgen -G "$work/full/p.yaml.tmp.*" >/dev/null && fail "temporary file left ($how)"
  rm -f "$work/full/p.yaml"
  expect_fail "compile to a new file ($how)" "p2.yaml" \
    bash -c "trap '' XFSZ; ulimit -f 4; exec '$qplan' compile m.gguf -o full/p2.yaml"
  expect_no_file "$work/full/p2.yaml"
  # A synthetic model is written the same way (atomically).
  expect_fail "synth onto a full disk ($how)" "s.gguf" bash -c "trap '' XFSZ; ulimit -f 4; exec \
    '$qplan' synth --arch qwen2 --n-layer 1 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 \
    --n-vocab 300 -o full/s.gguf"
  expect_no_file "$work/full/s.gguf"
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

if ! declare -F "case_$case_name" >/dev/null; then
  echo "failures.sh: unknown case '$case_name'"
  exit 2
fi
"case_$case_name"
echo "$case_name: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
