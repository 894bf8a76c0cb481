#!/usr/bin/env bash
# The webgpu engine against PyTorch on the GPU machine, side by side in one call:
#   PyTorch fp32 (before)   python3 .gpu/peers/torch_train_throughput.py SIZE BATCH PEER_STEPS cuda fp32
#   ours                    node .gpu/slfer.mjs bench train --backend webgpu --size SIZE --batch BATCH --steps STEPS --warmup WARMUP --json
#   ours, one profiled step the same with --steps 1 --warmup 1 --profile (time per kernel, GPU timer queries)
#   ours with tfjs's own webgpu kernels  SLFER_WEBGPU_KERNELS=tfjs, --steps 1 (what slfer-dist's WGSL kernels gain)
#   PyTorch fp32 (after), then PyTorch bf16 (on cuda)
# Both train the full SLFER model (SE-ResNet18 + ECT/ST/CT heads, 13.7M parameters) with Adam on a
# fixed random batch. Writes OUT/summary.json (scripts/gpu/summary.mjs), OUT/<stage>.log and
# OUT/stages.tsv (each stage's status, seconds and exact command).
#
# Two steps:
#   1. on the CPU machine, from the repo root:  bash scripts/gpu/prepare.sh      (.gpu/, ~45 MiB)
#   2. one device call with carry [".gpu"]:       bash scripts/gpu/run-bench.sh   (OUT is set there)
# Dry run here (lavapipe, PyTorch on CPU, same bundle, a copy of the tree): bash scripts/gpu/dry-run.sh
#
# Each stage runs under `timeout`; one that runs out is recorded as timed out and the rest still run.
# The whole run stays inside BUDGET_S (default 480 s: a device call is capped at 10 minutes). Our
# engine trained at 27 img/s on the H200 before kernel work (2.4 s per step at batch 64), so STEPS
# is small. Overrides: SIZE BATCH STEPS WARMUP WIDTH PEER_STEPS PEER_DEVICE BF16 PY BUDGET_S
# T_PEER T_OURS T_PROFILE OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/gpu-bench-$(date +%Y%m%d-%H%M%S)}
SIZE=${SIZE:-224}
BATCH=${BATCH:-64}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-1}
WIDTH=${WIDTH:-1}
PEER_STEPS=${PEER_STEPS:-20}
PEER_DEVICE=${PEER_DEVICE:-cuda}
BF16=${BF16:-$([ "$PEER_DEVICE" = cuda ] && echo 1 || echo 0)}   # bf16 on CPU is slow and says little
PY=${PY:-python3}
BUDGET_S=${BUDGET_S:-480}
T_PEER=${T_PEER:-60}        # CUDA start-up and cudnn.benchmark's search included
T_OURS=${T_OURS:-150}       # start-up, shader compilation in the warm-up step, STEPS steps, forward
T_PROFILE=${T_PROFILE:-120}
T_TFJS=${T_TFJS:-60}         # tfjs's kernels took 2.4 s per step here; one step, or whatever fits
TFJS_AB=${TFJS_AB:-1}        # 0 skips the comparison with tfjs's own kernels
# 60+150+120+60+60 plus setup fits BUDGET_S, so the after and bf16 peers still run; the tfjs-kernels
# stage comes last and gets what is left of the budget (stage() caps it, or skips it under 15 s)
mkdir -p "$OUT"
: > "$OUT/stages.tsv"
printf '{"size":%s,"batch":%s,"steps":%s,"warmup":%s,"width":%s,"peerSteps":%s,"peerDevice":"%s","budgetSeconds":%s}\n' \
  "$SIZE" "$BATCH" "$STEPS" "$WARMUP" "$WIDTH" "$PEER_STEPS" "$PEER_DEVICE" "$BUDGET_S" > "$OUT/config.json"

if [ ! -f .gpu/setup.sh ]; then
  echo "run-bench: no .gpu/ here: run 'bash scripts/gpu/prepare.sh' on the CPU machine and carry .gpu" >&2
  exit 1
fi
. .gpu/setup.sh   # Vulkan loader, NVIDIA's ICD, node on PATH, addons unpacked
trap 'rm -rf "$SLFER_NODE_DIR"' EXIT
echo "node $(node --version) from .gpu; setup took ${SECONDS} s"

# stage NAME LIMIT CMD...: runs CMD under timeout, logs to OUT/NAME.log, records the outcome in stages.tsv
stage() {
  local name=$1 limit=$2 status rc=0 t0=$SECONDS
  shift 2
  local left=$((BUDGET_S - SECONDS))
  if [ "$left" -lt 15 ]; then
    status="skipped: ${BUDGET_S} s budget spent"
  else
    [ "$limit" -le "$left" ] || limit=$left
    timeout -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1 || rc=$?
    case $rc in
      0) status=ok ;;
      124) status="timed out after ${limit} s" ;;
      137) status="killed (past ${limit} s, or out of memory)" ;;
      *) status="failed (exit $rc)" ;;
    esac
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$*" >> "$OUT/stages.tsv"
  echo "[$name] $status, $((SECONDS - t0)) s: $*"
  if [ "$rc" -ne 0 ]; then tail -n 5 "$OUT/$name.log" | sed 's/^/    /'; fi
}

if command -v nvidia-smi >/dev/null; then
  stage nvidia-smi 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  cat "$OUT/nvidia-smi.log"
  nvidia-smi > "$OUT/nvidia-smi-full.log" 2>&1 || true
else
  printf 'nvidia-smi\tskipped: no nvidia-smi here\t0\tnvidia-smi\n' >> "$OUT/stages.tsv"
fi

peer() { stage "$1" "$T_PEER" env THREADS="${THREADS:-16}" "$PY" .gpu/peers/torch_train_throughput.py "$SIZE" "$BATCH" "$PEER_STEPS" "$PEER_DEVICE" "$2"; }
ours=(node .gpu/slfer.mjs bench train --backend webgpu --size "$SIZE" --batch "$BATCH" --width "$WIDTH")

peer peer-fp32-before fp32
stage ours "$T_OURS" "${ours[@]}" --steps "$STEPS" --warmup "$WARMUP" --json
stage ours-profile "$T_PROFILE" "${ours[@]}" --steps 1 --warmup 1 --profile --json
peer peer-fp32-after fp32
if [ "$BF16" = 1 ]; then peer peer-bf16 bf16; fi
if [ "$TFJS_AB" = 1 ]; then stage ours-tfjs-kernels "$T_TFJS" env SLFER_WEBGPU_KERNELS=tfjs "${ours[@]}" --steps 1 --warmup 1 --json; fi

node scripts/gpu/summary.mjs "$OUT"
echo "total ${SECONDS} s"
