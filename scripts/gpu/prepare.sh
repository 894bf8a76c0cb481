#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for the GPU machine, which has no Node.js, no Vulkan loader, no
# node_modules and no network, and takes at most 64 MiB of untracked files along:
#   .gpu/node.xz                 this machine's node binary (the native addons are built for its ABI)
#   .gpu/debs/*.deb              Debian's Vulkan/EGL loader packages, unpacked there by setup.sh
#   .gpu/setup.sh                sourced by scripts/gpu/run-bench.sh: loader, NVIDIA's ICD, node on PATH
#   .gpu/slfer.mjs + *.mjs       the CLI bundled by esbuild, with the worker, heartbeat, decoding-task
#                                and benchmark-worker entry points beside it (compiledSibling finds them)
#   .gpu/node_modules/           the packages kept out of the bundle (native addons, or packages that
#                                locate their own files): linux-x64 binaries only, big ones xz-compressed
#   .gpu/peers/                  the PyTorch peer scripts
#
# Two steps:
#   1. here, from the repo root:   bash scripts/gpu/prepare.sh          (needs apt-get for the debs)
#   2. one device call, carry [".gpu"]:   bash scripts/gpu/run-bench.sh  (writes $OUT/summary.json)
# Dry run of the same bundle on this machine (lavapipe, PyTorch on CPU): bash scripts/gpu/dry-run.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
G=.gpu
MAX_MIB=${MAX_MIB:-60}   # the device takes 64 MiB of carried paths in all; keep a margin
mkdir -p "$G/debs"

# node: recompressed only when the binary changes (xz -6 of ~100 MB takes a minute on 2 cores)
node_bin=$(readlink -f "$(command -v node)")
if [ ! -f "$G/node.xz" ] || [ "$(cat "$G/node.version" 2>/dev/null)" != "$(node --version) $node_bin" ]; then
  xz -T2 -6 -c "$node_bin" > "$G/node.xz.tmp" && mv "$G/node.xz.tmp" "$G/node.xz"
  echo "$(node --version) $node_bin" > "$G/node.version"
fi

# Vulkan loader packages, from this machine's Debian mirror (a private list dir: apt's own state is left alone)
if ! ls "$G"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d); mkdir -p "$lists/partial"
  o=(-q -oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists" -oAPT::Sandbox::User=root)
  apt-get "${o[@]}" update >/dev/null
  (cd "$G/debs" && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>/dev/null)
  rm -rf "$lists"
fi

cat > "$G/setup.sh" <<'SETUP'
# Sourced from the repo root at the start of a GPU-machine run (scripts/gpu/run-bench.sh does it).
# The Vulkan loader is unpacked into / only where the system has none (the GPU machine): a machine
# with its own (the dry run on the CPU machine) keeps its system libraries untouched.
if ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1 ' >/dev/null; then
  for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
# NVIDIA's Vulkan driver; absent on a CPU machine, where the loader finds lavapipe by itself
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
SLFER_NODE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/slfer-node.XXXXXX")
xz -dc .gpu/node.xz > "$SLFER_NODE_DIR/node" && chmod +x "$SLFER_NODE_DIR/node"
export PATH="$SLFER_NODE_DIR:$PATH"
# compressed addons and libraries, unpacked in place. This grows .gpu/ past what a device call
# carries: source it in a copy of the tree (as the device and scripts/gpu/dry-run.sh do), or run
# prepare.sh again before carrying .gpu/.
find .gpu/node_modules -name '*.xz' -exec xz -df {} +
SETUP

# the build, then the bundle. Every entry point compiledSibling() resolves is bundled flat into .gpu/
# as <name>.mjs; --splitting shares one copy of tfjs between them (chunk-*.mjs).
npm run build --silent
rm -rf "$G"/*.mjs "$G"/*.wasm "$G/node_modules" "$G/peers"
banner="import { createRequire as __slferCreateRequire } from 'module'; import { fileURLToPath as __slferFileURLToPath } from 'url'; import { dirname as __slferDirname } from 'path'; const require = __slferCreateRequire(import.meta.url); const __filename = __slferFileURLToPath(import.meta.url); const __dirname = __slferDirname(__filename);"
# (bundled CommonJS code calls require and reads __dirname: tfjs-backend-wasm finds its .wasm files by it)
externals=(webgpu zeromq sharp piscina @tensorflow/tfjs-node @tensorflow/tfjs-node-gpu msgpackr-extract)
npx esbuild \
  slfer=bin/slfer-dist.js \
  worker=dist/cluster/worker.js \
  heartbeat-thread=dist/cluster/heartbeat-thread.js \
  allreduce-worker=dist/cluster/bench/allreduce-worker.js \
  scaling-worker=dist/cluster/bench/scaling-worker.js \
  decode-task=dist/src/data/decode-task.js \
  --bundle --splitting --platform=node --format=esm --target=node20 \
  --outdir="$G" --out-extension:.js=.mjs --chunk-names='chunk-[hash]' \
  "${externals[@]/#/--external:}" --banner:js="$banner" --log-level=warning
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$G/"   # the wasm engine, for launch --workers

# External packages: JS and package.json only (no sources, maps, types, docs, tests; binaries via bin_xz)
pkg() {
  mkdir -p "$G/node_modules"
  tar -C node_modules -cf - --exclude='*.map' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' \
    --exclude='*.md' --exclude='*.node' --exclude='*.so' --exclude='*.so.*' --exclude="$1/src" --exclude="$1/test" --exclude="$1/test-jest" --exclude="$1/docs" \
    --exclude="$1/benchmark" --exclude="$1/script" --exclude="$1/scripts" --exclude="$1/build" \
    --exclude="$1/dist/linux-*" --exclude="$1/dist/darwin-*" --exclude="$1/dist/win32-*" \
    --exclude="$1/node_modules" "$1" | tar -C "$G/node_modules" -xf -
}
# a binary, xz-compressed in place of itself (setup.sh unpacks it beside the .xz)
bin_xz() { mkdir -p "$(dirname "$G/node_modules/$1")"; xz -T2 -6 -c "node_modules/$1" > "$G/node_modules/$1.xz"; }

pkg webgpu && bin_xz webgpu/dist/linux-x64/dawn.node
pkg piscina                      # finds its own worker.js by __dirname, so not bundled
pkg sharp && pkg @img/colour && pkg detect-libc && pkg semver
pkg @img/sharp-linux-x64 && mkdir -p "$G/node_modules/@img/sharp-linux-x64/lib"
for f in node_modules/@img/sharp-linux-x64/lib/*.node; do bin_xz "${f#node_modules/}"; done
pkg @img/sharp-libvips-linux-x64 && rm -rf "$G/node_modules/@img/sharp-libvips-linux-x64/lib/glib-2.0"
for f in node_modules/@img/sharp-libvips-linux-x64/lib/*.so*; do bin_xz "${f#node_modules/}"; done
# zeromq: its manifest lists a build per ABI and libc; keep only the one this node binary loads
pkg zeromq && pkg cmake-ts && rm -rf "$G/node_modules/cmake-ts/build" && mkdir -p "$G/node_modules/cmake-ts/build"
cp node_modules/cmake-ts/build/loader.js "$G/node_modules/cmake-ts/build/"
mkdir -p "$G/node_modules/zeromq/build" && cp node_modules/zeromq/build/manifest.json "$G/node_modules/zeromq/build/"
zmq_addon=$(node -e 'require("zeromq"); const m = require("fs").readFileSync("/proc/self/maps", "utf8").match(/\S*zeromq\/build\/\S*\.node/); console.log(m ? m[0] : "")')
[ -n "$zmq_addon" ] || { echo "prepare: could not tell which zeromq addon node loads" >&2; exit 1; }
bin_xz "${zmq_addon#"$PWD/node_modules/"}"

mkdir -p "$G/peers" && cp scripts/peers/*.py "$G/peers/"

du -sh "$G"
mib=$(du -sm "$G" | cut -f1)
if [ "$mib" -gt "$MAX_MIB" ]; then
  echo "prepare: .gpu is ${mib} MiB, over ${MAX_MIB} MiB (the device takes 64 MiB of carried paths)" >&2
  exit 1
fi
echo "ready: one device call with carry [\".gpu\"]: bash scripts/gpu/run-bench.sh"
