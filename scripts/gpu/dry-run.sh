#!/usr/bin/env bash
# Dry run of scripts/gpu/run-bench.sh on this (CPU) machine, as the GPU machine would run it: on a
# copy of the working tree (tracked and untracked-but-not-ignored files, as the device gets) plus
# .gpu/, so no node_modules, dist/ or build/ is in reach and the bundle must stand on its own. Node
# is the one unpacked from .gpu/; the webgpu engine runs on Mesa's lavapipe; PyTorch on the CPU.
#
# Needs: scripts/gpu/prepare.sh run first; Mesa 25 lavapipe; a python with torch + torchvision
# (PY, default /usr/bin/python3, Debian's python3-torch).
# Usage: bash scripts/gpu/dry-run.sh        (OUT default /tmp/gpubench-out; about 2 minutes on 2 cores)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -f .gpu/setup.sh ] || { echo "dry-run: run 'bash scripts/gpu/prepare.sh' first" >&2; exit 1; }
export OUT=${OUT:-/tmp/gpubench-out}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
tree=$(mktemp -d "${TMPDIR:-/tmp}/gpubench-tree.XXXXXX")
trap 'rm -rf "$tree"' EXIT
git ls-files -co --exclude-standard -z | tar -cf - --null -T - | tar -C "$tree" -xf -
cp -a .gpu "$tree/"
cd "$tree"
# small enough for lavapipe on 2 cores; the full paper network, as on the GPU
SIZE=${SIZE:-32} BATCH=${BATCH:-2} STEPS=${STEPS:-1} WARMUP=${WARMUP:-1} PEER_STEPS=${PEER_STEPS:-3} \
  PEER_DEVICE=${PEER_DEVICE:-cpu} THREADS=${THREADS:-2} PY=${PY:-/usr/bin/python3} \
  bash scripts/gpu/run-bench.sh
