#!/usr/bin/env bash
# The CPU engine against PyTorch, side by side on this machine, in one run:
#   PyTorch 1.13 CPU, 2 threads (the peer as shipped, NCHW; and channels_last, its best CPU layout)
#   slfer-dist launch --workers 2 --backend wasm   (convolutions on oneDNN: the native kernels)
#   the same with SLFER_NATIVE=off                 (pure wasm: XNNPACK convolutions)
# All train the full SLFER model (SE-ResNet18, ECT+ST+CT heads, 13.7M parameters) at 128px, batch 16
# per worker (per step for PyTorch), with Adam. slfer-dist's figure is the last epoch's img/s from
# metrics.jsonl: the real pipeline (decoding on piscina threads, all-reduce over ZeroMQ) included.
#
# Needs: /usr/bin/python3 with python3-torch + python3-torchvision (apt), the project built (npm ci).
# Usage: scripts/bench-cpu-128.sh [out-dir]     (about 12 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench-cpu-128-$(date +%Y%m%d-%H%M%S)}
DATA=${DATA:-.cache/slfer-dist/synthetic-128}
PY=${PY:-/usr/bin/python3}
mkdir -p "$OUT"

peer() { THREADS=2 "$PY" scripts/peers/torch_train_throughput.py 128 16 "${STEPS:-5}" cpu "$1" | tee -a "$OUT/peer.log" | sed -E 's/.*: ([0-9.]+) img\/s.*/\1/'; }
ours() { # $1: run name; remaining: extra launch flags
  local name=$1; shift
  node bin/slfer-dist.js launch --workers 2 --backend wasm -c configs/cpu-128.json --data "$DATA" -o "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1
  node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n"); console.log(JSON.parse(l.at(-1)).imagesPerSec.toFixed(2))' "$OUT/$name/metrics.jsonl"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
torch_nchw=$(peer fp32)
echo "PyTorch 2 threads (NCHW, as shipped):    $torch_nchw img/s"
native=$(ours native)
echo "slfer-dist launch --workers 2 (oneDNN): $native img/s   ($(grep -o -m1 'oneDNN [0-9.]*, [0-9]* threads\?' "$OUT/native.log" || echo 'oneDNN not loaded!') per worker)"
torch_cl=$(peer fp32cl)
echo "PyTorch 2 threads (channels_last):      $torch_cl img/s"
xnnpack=$(SLFER_NATIVE=off ours xnnpack --epochs 2)
echo "slfer-dist launch --workers 2 (XNNPACK): $xnnpack img/s"
torch_nchw2=$(peer fp32)
echo "PyTorch 2 threads (NCHW, again):        $torch_nchw2 img/s"

node -e '
const [out, tn, tn2, tcl, nat, xnn] = process.argv.slice(1);
const torch = (Number(tn) + Number(tn2)) / 2;
const r = { torchNchw: torch, torchNchwRuns: [Number(tn), Number(tn2)], torchChannelsLast: Number(tcl), oursNative: Number(nat), oursXnnpack: Number(xnn),
  ratioNativeVsTorch: Number(nat) / torch, ratioNativeVsTorchChannelsLast: Number(nat) / Number(tcl), ratioXnnpackVsTorch: Number(xnn) / torch };
const fs = require("fs");
fs.writeFileSync(out + "/summary.json.tmp", JSON.stringify(r, null, 2) + "\n");
fs.renameSync(out + "/summary.json.tmp", out + "/summary.json");
console.log(`ratios: oneDNN ${r.ratioNativeVsTorch.toFixed(2)}x PyTorch (NCHW), ${r.ratioNativeVsTorchChannelsLast.toFixed(2)}x PyTorch (channels_last); XNNPACK ${r.ratioXnnpackVsTorch.toFixed(2)}x PyTorch (NCHW)`);
console.log(`summary: ${out}/summary.json`);
' "$OUT" "$torch_nchw" "$torch_nchw2" "$torch_cl" "$native" "$xnnpack"
