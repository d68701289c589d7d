#!/usr/bin/env bash
# Runs ON the GPU machine (docs/device.md, docs/fidelity.md): the CUDA backend's perplexity on
# Debian's GPL-3 text (-c 512, every chunk: 14 for the 0.5B model) and its KL divergence from the
# CPU backend (and, with the oracle step, from the double-precision reference), one command.
#
# What must travel. The real model cannot be carried whole: a call carries at most 64 MiB, the
# checkout's tree included, so it goes in pieces of at most 55 MB, one piece per call. A carried
# path is removed by the next call that does not carry it, so each call moves its piece out of the
# tree on the device (e.g. to /tmp/qp-parts, which stays while the machine is warm: a machine goes
# back 30 s after a call, so make the calls back to back); this script joins every file under
# QP_PARTS in path order and checks the sha256 pinned in scripts/fetch-model.sh before anything
# runs. Here, once, in a folder of its own that git ignores (not .device, which other device
# calls carry) and one folder per piece (9 for the 0.5B, 21 for the 1.5B):
#     m=$(scripts/fetch-model.sh); cd /work/main && echo /.device-pieces/ >> .git/info/exclude
#     mkdir -p .device-pieces/fid-parts && cd .device-pieces/fid-parts
#     split -b 55000000 -d -a 2 "$m" model.part
#     for f in model.part*; do mkdir "p${f#model.part}" && mv "$f" "p${f#model.part}/"; done
# GPL-3 goes beside it as .device-pieces/GPL-3 (named in QP_TEXT, so that the device reads the
# same bytes as the runs here). The call that carries .deps/root carries the last, smaller piece
# (51.4 MB for the 0.5B), the others a piece alone. docs/device.md has the calls.
#
# Steps (QP_STEPS, default "build join cuda cpu kld oracle"; each one's status is listed at the
# end; a step may run in a later call than the one it needs, on the same warm machine):
#   build       scripts/device-build.sh, targets qrun and qpref_cli only
#   join        the pieces (every file under QP_PARTS, default <repo>/../fid-parts) into
#               $work/<model file>, sha256 checked; skipped when QP_MODEL names an existing file (also checked)
#   cuda        qrun --device cuda --perplexity -f GPL-3 -c 512 --kl-divergence-base $work/cuda.kld
#   cpu         the same with --device cpu (every core) -> $work/cpu.kld
#   kld         qrun --device cuda --kl-divergence against cpu.kld (targets: mean KLD <= 1e-4,
#               same top >= 99.5%)
#   kld-cpu     the reverse: --device cpu against cuda.kld (one more CPU pass)
#   oracle      qpref --perplexity, the double-precision reference, on every core (30 s a chunk
#               on 2 cores here) -> $work/oracle.kld, then cuda against it
#   oracle-cpu  --device cpu against oracle.kld (one more CPU pass)
#   variant     the model compiled with QP_VARIANT's options (e.g. "--int8-activations", or
#               "--kernel 'decode:linear:output.weight=mmvq'") on CUDA against cuda.kld: what
#               that plan costs in fidelity (docs/fidelity.md), then qrun --bench of both plans
# Environment:
#   QP_MODEL_NAME  0.5b (default) or 1.5b: the pinned file and its plan in plans/
#   QP_CHUNKS      --chunks (default: all; the issue asks 4 for the 1.5B)
#   QP_TEXT        the text (default /usr/share/common-licenses/GPL-3, else <repo>/../GPL-3)
#   QP_WORK        where the joined model and the base files go (default ${TMPDIR:-/tmp}/qp-fidelity)
#   QP_VARIANT     qplan compile options of the variant step's plan (default --int8-activations)
# Logs and results go to $OUT (or ./device-out): summary.txt, cuda-ppl.txt, cpu-ppl.txt,
# kld-cuda-vs-cpu.txt, [kld-cpu-vs-cuda.txt, oracle-ppl.txt, kld-cuda-vs-oracle.txt,
# kld-cpu-vs-oracle.txt]. The base files (1.09 GB each) stay in $work. Exit status nonzero
# when a step failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/device-out}
mkdir -p "$out"
steps=${QP_STEPS:-build join cuda cpu kld oracle}
name=$("$root/scripts/fetch-model.sh" --name "${QP_MODEL_NAME:-0.5b}") || exit 2
plan=$root/plans/${name%.gguf}.yaml
work=${QP_WORK:-${TMPDIR:-/tmp}/qp-fidelity}
mkdir -p "$work"
export QP_BUILD_DIR=${QP_BUILD_DIR:-$root/build-device}
b=$QP_BUILD_DIR
export PATH=/usr/local/cuda/bin:$PATH
text=${QP_TEXT:-}
if [ -z "$text" ]; then
  for t in /usr/share/common-licenses/GPL-3 "$root/../GPL-3"; do [ -f "$t" ] && text=$t && break; done
fi
chunks=${QP_CHUNKS:+--chunks $QP_CHUNKS}
summary=()
note() { summary+=("$1"); echo "== $1"; }
want() { [[ " $steps " == *" $1 "* ]]; }
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
echo "commit: $(cat "$root/.git-commit" 2>/dev/null || git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"

if want build; then
  if QP_TARGET="qplan qrun qpref_cli" "$root/scripts/device-build.sh" > "$work/build.log" 2>&1; then
    note "build: ok ($(( $(date +%s) - t0 )) s)"
  else
    tail -30 "$work/build.log"; note "build: FAILED"; printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"; exit 1
  fi
fi

model=${QP_MODEL:-$work/$name}
if want join && [ -z "${QP_MODEL:-}" ]; then
  if [ -f "$model" ] && "$root/scripts/fetch-model.sh" --verify "${QP_MODEL_NAME:-0.5b}" "$model" 2>/dev/null; then
    note "join: $model already there (sha256 ok)"
  else
    mapfile -t parts < <(find "${QP_PARTS:-$root/../fid-parts}/" -type f 2>/dev/null | LC_ALL=C sort)
    if [ ${#parts[@]} = 0 ]; then
      note "join: FAILED: no pieces in ${QP_PARTS:-$root/../fid-parts} (see this script's header)"
    else
      cat "${parts[@]}" > "$model.tmp" && mv "$model.tmp" "$model"
      if "$root/scripts/fetch-model.sh" --verify "${QP_MODEL_NAME:-0.5b}" "$model"; then
        note "join: ${#parts[@]} pieces -> $model (sha256 ok)"
      else
        note "join: FAILED: ${#parts[@]} pieces, $(stat -c %s "$model") bytes: not $name yet (a piece missing?)"
        rm -f "$model"
      fi
    fi
  fi
fi
ready=1
measure=0
for st in cuda cpu kld kld-cpu oracle oracle-cpu variant; do want $st && measure=1; done
[ $measure = 1 ] || ready=0 # build and join only: nothing to check yet
[ $measure = 0 ] || [ -f "$model" ] || { note "model: MISSING ($model): nothing to measure"; ready=0; }
[ $measure = 0 ] || [ -n "$text" ] || { note "text: MISSING (no GPL-3: carry .device/GPL-3 or set QP_TEXT)"; ready=0; }
[ $measure = 0 ] || [ -x "$b/runtime/qrun" ] || { note "qrun: MISSING (build step)"; ready=0; }

# ppl DEVICE: perplexity on DEVICE, base file $work/DEVICE.kld
ppl() {
  local dev=$1 t=$(date +%s)
  "$b/runtime/qrun" "$plan" -m "$model" --device "$dev" --perplexity -f "$text" -c 512 $chunks \
    --kl-divergence-base "$work/$dev.kld" > "$out/$dev-ppl.txt" 2>&1
  local rc=$?
  note "$dev perplexity: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(( $(date +%s) - t )) s): $(grep -o 'PPL = .*' "$out/$dev-ppl.txt")"
}
# kld DEVICE BASE: DEVICE against $work/BASE.kld
kld() {
  local dev=$1 base=$2 t=$(date +%s)
  "$b/runtime/qrun" "$plan" -m "$model" --device "$dev" --kl-divergence \
    --kl-divergence-base "$work/$base.kld" $chunks > "$out/kld-$dev-vs-$base.txt" 2>&1
  local rc=$?
  note "$dev vs $base: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(( $(date +%s) - t )) s): $(grep -E '^Mean    KLD' "$out/kld-$dev-vs-$base.txt" | tr -s ' ') | $(grep -E '^Same top p' "$out/kld-$dev-vs-$base.txt" | tr -s ' ') | $(grep -E '^Mean PPL\(Q\)/PPL' "$out/kld-$dev-vs-$base.txt" | tr -s ' ')"
}
if [ $ready = 1 ]; then
  want cuda && ppl cuda
  want cpu && ppl cpu
  # each comparison needs its base: written by an earlier step, in this call or an earlier one
  base() { [ -f "$work/$1.kld" ] || { note "$2: MISSING $work/$1.kld (step $1 first)"; return 1; }; }
  want kld && base cpu kld && kld cuda cpu
  want kld-cpu && base cuda kld-cpu && kld cpu cuda
  if want oracle; then
    t=$(date +%s)
    "$b/tests/qpref" "$model" --perplexity -f "$text" -c 512 $chunks -t "$(nproc)" \
      --kl-divergence-base "$work/oracle.kld" > "$out/oracle-ppl.txt" 2>&1
    rc=$?
    note "oracle perplexity: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(( $(date +%s) - t )) s): $(grep -o 'PPL = .*' "$out/oracle-ppl.txt")"
    if [ $rc = 0 ]; then kld cuda oracle; fi
  fi
  want oracle-cpu && base oracle oracle-cpu && kld cpu oracle
  if want variant && base cuda variant; then
    vplan=$work/variant.yaml
    if eval "\"$b/compiler/qplan\" compile \"$model\" -o \"$vplan\" ${QP_VARIANT:---int8-activations}" > "$out/variant-compile.txt" 2>&1; then
      t=$(date +%s)
      "$b/runtime/qrun" "$vplan" -m "$model" --device cuda --kl-divergence --kl-divergence-base "$work/cuda.kld" \
        $chunks > "$out/kld-variant-vs-cuda.txt" 2>&1
      rc=$?
      note "variant (${QP_VARIANT:---int8-activations}) vs cuda: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(( $(date +%s) - t )) s): $(grep -E '^Mean    KLD' "$out/kld-variant-vs-cuda.txt" | tr -s ' ') | $(grep -E '^Same top p' "$out/kld-variant-vs-cuda.txt" | tr -s ' ') | $(grep -E '^Mean PPL\(Q\)/PPL' "$out/kld-variant-vs-cuda.txt" | tr -s ' ')"
      for pl in "$plan" "$vplan" "$plan" "$vplan"; do
        timeout 120 "$b/runtime/qrun" "$pl" -m "$model" --device cuda --bench --bench-depths 0 --bench-reps 5 2>&1 |
          grep -E '^\|.*(tg|pp)' | sed "s|^|$(basename "$pl") |" | tee -a "$out/variant-bench.txt"
      done
    else
      note "variant: FAILED to compile (variant-compile.txt)"
    fi
  fi
fi
echo "---- summary ($(( $(date +%s) - t0 )) s) ----"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
! grep -q 'FAILED\|MISSING' "$out/summary.txt"
