#!/usr/bin/env bash
# What the native kernels' argument checks, the shared guarded scratchpad and the passed-over oneDNN
# implementation cost: `slfer-dist bench train` on wasm with the native kernels, this tree against
# another checkout (BEFORE=<dir>, built), alternating A/B rounds on the same machine.
#   BEFORE=/path/to/old-checkout bash scripts/bench-native-checks.sh [rounds]
# Prints one JSON line per run and a median per configuration.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
before="${BEFORE:?set BEFORE to a built checkout to compare with}"
rounds="${1:-3}"
lscpu | grep -E '^Model name' | sed 's/^/# /'
configs=(
  "--size 128 --batch 16 --width 1 --steps 3 --warmup 1"      # the paper network
  "--size 64 --batch 16 --width 0.125 --steps 10 --warmup 2"  # the default model
)
out=$(mktemp)
for r in $(seq "$rounds"); do
  for c in "${configs[@]}"; do
    for side in after before; do
      dir=$here; [ "$side" = before ] && dir=$before
      v=$(cd "$dir" && node bin/slfer-dist.js bench train --backend wasm $c --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).trainImagesPerSec.toFixed(2)))')
      echo "{\"round\":$r,\"side\":\"$side\",\"config\":\"$c\",\"trainImagesPerSec\":$v}" | tee -a "$out"
    done
  done
done
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const med = (a) => { a = [...a].sort((x, y) => x - y); return a[a.length >> 1]; };
  for (const c of [...new Set(rows.map((r) => r.config))]) {
    const m = (s) => med(rows.filter((r) => r.config === c && r.side === s).map((r) => r.trainImagesPerSec));
    console.log(`${c}: after ${m("after")} img/s, before ${m("before")} img/s, ratio ${(m("after") / m("before")).toFixed(3)}`);
  }' "$out"
