#!/usr/bin/env bash
# `parse --method landmarks` labelling speed on RAF-DB-sized faces (100x100): the 108 face tiles of
# the gallery in @vladmandic/human's assets/screenshot-facematch.jpg (real photographs, about 100 px
# each), cut out and resized to exactly 100x100. Timed: createLandmarksMaker's label() alone (face
# detection, mesh, iris, polygons), after one warm-up pass; decoding and writing PNGs are not in it.
# With THREADS=2 the images are handed to label() two at a time, as parse can.
#
# Needs: the project built (npm ci / npm run build) with @vladmandic/human installed.
# Usage: scripts/bench-landmarks.sh        Env: THREADS (default "1 2"), PASSES (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
for t in ${THREADS:-1 2}; do
  node --input-type=module -e '
    import sharp from "sharp";
    import { join } from "node:path";
    import { performance } from "node:perf_hooks";
    import { findHumanPackage } from "./dist/src/parse/human-package.js";
    import { createLandmarksMaker } from "./dist/src/parse/landmarks-maker.js";
    const [threads, passes] = process.argv.slice(1).map(Number);
    const gallery = join(findHumanPackage().modelsDir, "..", "assets", "screenshot-facematch.jpg");
    const faces = [];
    for (let row = 0; row < 6; row++) {
      for (let col = 0; col < 18; col++) {
        const tile = { left: Math.round(3 + 106.6 * col), top: 285 + 112 * row, width: 100, height: 104 };
        const { data } = await sharp(gallery).extract(tile).resize(100, 100, { fit: "fill" }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        faces.push(new Uint8Array(data));
      }
    }
    const maker = await createLandmarksMaker({ threads });
    const pass = async () => {
      let found = 0;
      for (let i = 0; i < faces.length; i += threads) {
        const masks = await Promise.all(faces.slice(i, i + threads).map((f) => maker.label(f, 100, 100)));
        found += masks.filter((m) => m !== null).length;
      }
      return found;
    };
    await pass();
    const t0 = performance.now();
    let found = 0;
    for (let p = 0; p < passes; p++) found += await pass();
    const s = (performance.now() - t0) / 1000;
    const n = passes * faces.length;
    console.log(`threads ${threads}: ${(n / s).toFixed(1)} img/s (${((1000 * s) / n).toFixed(1)} ms/img; ${n} images of 100x100, a face found in ${found}; ${maker.description.package}, ${maker.description.engine})`);
    maker.dispose();
  ' "$t" "${PASSES:-3}"
done
