#!/usr/bin/env bash
# Static instruction counts of CUDA kernels in two source trees, here, without a GPU: each tree's
# kernels/cuda/FILE.cu compiled for sm_90a (the project's CUDA flags, -O3) to a cubin, ptxas's
# registers and spills, and cuobjdump's SASS counted per kernel instance (all, I2F, SHFL, PRMT,
# FFMA). Evidence of what a kernel change does to the code, not to the speed: a decode loop's
# instructions are in its instance once, whatever it runs for. Measured speed comes from the device
# (docs/device.md).
#
#   scripts/sass-compare.sh BASE_TREE NEW_TREE FILE REGEX
#     FILE   a file of kernels/cuda without .cu (matvec_stream)
#     REGEX  which mangled instance names to print (ILi12ELi0ELb1E: type 12 = Q4_K, epilogue 0,
#            MULTI true)
# cuobjdump is not in Debian's CUDA packages here: NVIDIA's nvidia-cuda-cuobjdump wheel, and the
# nvidia-cuda-nvdisasm wheel that its newer versions call for the SASS, are downloaded into .whl/
# once and unzipped (never installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# = 4 ] || { echo "usage: $0 BASE_TREE NEW_TREE FILE REGEX" >&2; exit 2; }
find_tool() { find "$root/.whl/$1" -name "$1" -type f 2>/dev/null | head -1 || true; }
for t in cuobjdump nvdisasm; do
  if [ -z "$(find_tool $t)" ]; then
    mkdir -p "$root/.whl/dl"
    pip download --no-deps --only-binary=:all: nvidia-cuda-$t -d "$root/.whl/dl" >&2
    unzip -oq "$root"/.whl/dl/nvidia_cuda_$t-*.whl -d "$root/.whl/$t"
  fi
done
tool=$(find_tool cuobjdump)
chmod +x "$tool" "$(find_tool nvdisasm)"
export NVDISASM_PATH=$(dirname "$(find_tool nvdisasm)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in base new; do
  t=$1; [ $side = new ] && t=$2
  mkdir -p "$work/$side"
  nvcc -O3 -DNDEBUG -DQP_HAVE_CUDA=1 -I"$t/include" -I"$t/kernels/cuda" -I"$t/kernels" -std=c++17 -arch=sm_90a \
    -cubin -Xptxas -v -o "$work/$side/k.cubin" "$t/kernels/cuda/$3.cu" > "$work/$side/ptxas.txt" 2>&1 &
done
wait
for side in base new; do "$tool" -sass "$work/$side/k.cubin" > "$work/$side/k.sass"; done
python3 - "$work" "$4" <<'PY'
import collections, re, sys
work, pat = sys.argv[1], sys.argv[2]
def sass(path):
    out, cur = {}, None
    for line in open(path):
        m = re.match(r'\s+Function : (\S+)', line)
        if m:
            cur = m.group(1); out[cur] = collections.Counter(); continue
        m = re.match(r'\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)', line)
        if m and cur: out[cur][m.group(1).split('.')[0]] += 1
    return out
def ptxas(path):
    r, cur = {}, None
    for line in open(path):
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m: cur = m.group(1)
        m = re.search(r'Used (\d+) registers', line)
        if m and cur: r.setdefault(cur, [0, 0])[0] = int(m.group(1))
        m = re.search(r'(\d+) bytes spill stores', line)
        if m and cur: r.setdefault(cur, [0, 0])[1] = int(m.group(1))
    return r
b, n = sass(f'{work}/base/k.sass'), sass(f'{work}/new/k.sass')
rb, rn = ptxas(f'{work}/base/ptxas.txt'), ptxas(f'{work}/new/ptxas.txt')
tot = lambda c: sum(v for o, v in c.items() if o not in ('NOP', 'BRA', 'EXIT'))
print('| instance | instructions | I2F | SHFL | PRMT | FFMA | registers | spill bytes |')
print('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
for k in sorted(set(b) | set(n)):
    if not re.search(pat, k): continue
    cb, cn = b.get(k, collections.Counter()), n.get(k, collections.Counter())
    pb, pn = rb.get(k, ['-', '-']), rn.get(k, ['-', '-'])
    i2f = lambda c: c['I2F'] + c['I2FP']
    print(f'| {k} | {tot(cb)} → {tot(cn)} | {i2f(cb)} → {i2f(cn)} | {cb["SHFL"]} → {cn["SHFL"]} | '
          f'{cb["PRMT"]} → {cn["PRMT"]} | {cb["FFMA"]} → {cn["FFMA"]} | {pb[0]} → {pn[0]} | {pb[1]} → {pn[1]} |')
PY
