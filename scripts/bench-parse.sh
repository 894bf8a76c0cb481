#!/usr/bin/env bash
# slfer-dist parse's speed on RAF-DB-sized images (100x100 aligned faces) at BiSeNet's 512px input,
# on each engine this machine has:
#   wasm with the native kernels (oneDNN convolutions), pure wasm (SLFER_NATIVE=off: XNNPACK),
#   webgpu (on a CPU machine: Mesa's lavapipe, which `--backend webgpu` accepts; skipped if absent).
# The weights are the parity fixture's: the full-size BiSeNet (13.3M parameters, real shapes) with
# formula values, written by scripts/peers/bisenet_reference.py. Speed does not depend on the values.
# Figures are parse.json's imagesPerSecond: every image decoded, labelled and its mask written,
# after the model is loaded (loadSeconds, printed apart); the first image's warm-up included.
#
# Needs: the project built (npm ci / npm run build). Usage: scripts/bench-parse.sh [out-dir]
# Env: N images (default 60), ENGINES (default "native wasm webgpu").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench-parse-$(date +%Y%m%d-%H%M%S)}
N=${N:-60}
ENGINES=${ENGINES:-native wasm webgpu}
WEIGHTS=test/fixtures/torch/bisenet-strided.pth
mkdir -p "$OUT"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
DATA="$OUT/rafdb-100px"
node bin/slfer-dist.js data synth --out "$DATA" --train "$((N - N / 4))" --test "$((N / 4))" --size 100 --seed 1 >/dev/null
rm -rf "$DATA/Mask"

run() { # $1: label; then env assignments and flags
  local label=$1; shift
  local log="$OUT/$label.log"
  if ! env "$@" >"$log" 2>&1; then
    echo "$label: failed ($(grep -m1 '^error' "$log" || tail -1 "$log"))"
    return 0
  fi
  node -e '
    const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const d = j.description;
    console.log(`${process.argv[2].padEnd(8)} ${String(j.imagesPerSecond.toFixed(2)).padStart(6)} img/s  (${(1000 / j.imagesPerSecond).toFixed(0)} ms/img; ${j.counts.written} masks in ${j.seconds.toFixed(1)} s; model loaded in ${j.loadSeconds.toFixed(1)} s; engine ${d.engine}${d.convolutions ? ", convolutions " + d.convolutions : ""})`);
  ' "$DATA/Mask/aligned/parse.json" "$label"
}

parse=(node bin/slfer-dist.js parse --data "$DATA" --weights "$WEIGHTS" --overwrite --input-size 512)
for e in $ENGINES; do
  case $e in
    native) run native -u SLFER_NATIVE "${parse[@]}" --backend wasm ;;
    wasm) run wasm SLFER_NATIVE=off "${parse[@]}" --backend wasm ;;
    webgpu) run webgpu "${parse[@]}" --backend webgpu ;;
    *) echo "unknown engine $e" >&2; exit 2 ;;
  esac
done
echo "logs: $OUT"
