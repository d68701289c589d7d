#!/usr/bin/env bash
# Regenerates the checked-in expected logits (tests/data/reference/*.logits) with the numpy
# reference (scripts/numpy_forward.py; needs `pip install numpy gguf`). A developer step: CI
# only reads the results. Run it after a deliberate change to the synthetic generator's bytes
# (the tests then report a changed fnv1a64) or to the cases below; review the diff.
#
# Synthetic cases: the "synth ..." meta line is the exact qplan command (minus -o) that the
# test (tests/reference/test_reference_synth.c) runs again at test time.
# Real model: the first 8 tokens of a fixed English prompt; top 16 + 256 sampled logits per
# position (the full 8 x 151936 would be 20 MB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QP_BUILD_DIR:-$root/build}
out=$root/tests/data/reference
qplan=$build/compiler/qplan
[ -x "$qplan" ] || { echo "build first: $qplan not found" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# name | token ids (>= 8 positions) | qplan synth arguments
cases=(
  "synth-a|1,50,100,270,271,272,5,299,3,7|synth --arch qwen2 --n-layer 2 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 256 --n-vocab 300 --types attn_q=f32,attn_v=f16,ffn_down=q4_k,output=tied --seed 11"
  "synth-b|0,255,256,269,270,271,272,279,17,42|synth --arch qwen2 --n-layer 3 --n-embd 96 --n-head 3 --n-head-kv 1 --n-ff 256 --n-vocab 280 --types *=q5_0,attn_k=q4_0,attn_v=q5_1,attn_output=q4_1,ffn_down=q6_k,token_embd=bf16,output=q8_0 --seed 22"
  "synth-c|3,1,4,1,5,9,2,6,5,3,5,8|synth --arch qwen2 --n-layer 2 --n-embd 256 --n-head 4 --n-head-kv 4 --n-ff 512 --n-vocab 320 --rope-base 10000 --eps 1e-5 --types *=q4_k,attn_v=q5_k,ffn_up=q2_k,attn_output=q3_k,ffn_down=q6_k,token_embd=q5_k,output=q6_k,blk.1.ffn_gate=f16,output_norm=f16 --seed 33"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name tokens cmd <<<"$c"
  # shellcheck disable=SC2086
  "$qplan" $cmd -o "$tmp/$name.gguf"
  python3 "$root/scripts/numpy_forward.py" "$tmp/$name.gguf" --tokens "$tokens" --all \
    --meta "$cmd" -o "$out/$name.logits"
done

model=${QP_MODEL:-$HOME/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
if [ -f "$model" ]; then
  prompt="The quick brown fox jumps over the lazy dog. The capital of France is"
  ids=$(python3 "$root/scripts/numpy_forward.py" "$model" --prompt "$prompt" --print-ids)
  first8=$(echo "$ids" | cut -d, -f1-8)
  python3 "$root/scripts/numpy_forward.py" "$model" --tokens "$first8" --top 16 --sample 256 \
    --meta "prompt $prompt" --meta "prompt ids $ids" -o "$out/qwen2.5-coder-0.5b-q4_k_m.logits"
else
  echo "no real model at $model: its expected logits were not regenerated" >&2
fi
