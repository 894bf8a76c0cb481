/**
 * Filling polygons into a label image, for masks drawn from landmarks. A pixel belongs to a polygon
 * when its centre does (even-odd rule, the edge's half-open test), so two polygons that share an
 * edge never both claim a pixel and nothing depends on drawing order along that edge. No package on
 * npm rasterises polygons into a typed array; a scanline fill is a few lines.
 */

/** (x, y) in pixels; the pixel at column i spans [i, i + 1), so its centre is i + 0.5. */
export type Point = readonly [number, number];

/** Sets out[y * width + x] = value for every pixel whose centre lies inside `polygon` (closed implicitly). */
export function fillPolygon(out: Uint8Array, width: number, height: number, polygon: readonly Point[], value: number): void {
  const n = polygon.length;
  if (n < 3) return;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const [, y] of polygon) {
    minY = Math.min(minY, y);
    maxY = Math.max(maxY, y);
  }
  // Rows whose centre line y + 0.5 can cross the polygon, clipped to the image.
  const firstRow = Math.max(0, Math.ceil(minY - 0.5));
  const lastRow = Math.min(height - 1, Math.floor(maxY - 0.5));
  const crossings: number[] = [];
  for (let row = firstRow; row <= lastRow; row++) {
    const yc = row + 0.5;
    crossings.length = 0;
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const [xi, yi] = polygon[i];
      const [xj, yj] = polygon[j];
      if (yi <= yc !== yj <= yc) crossings.push(xi + ((yc - yi) / (yj - yi)) * (xj - xi));
    }
    crossings.sort((a, b) => a - b);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      // Columns whose centre x + 0.5 lies in [from, to).
      const from = Math.max(0, Math.ceil(crossings[k] - 0.5));
      const to = Math.min(width, Math.ceil(crossings[k + 1] - 0.5));
      if (to > from) out.fill(value, row * width + from, row * width + to);
    }
  }
}

/** Convex hull, counter-clockwise, without collinear points (Andrew's monotone chain). */
export function convexHull(points: readonly Point[]): Point[] {
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o: Point, a: Point, b: Point) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const chain = (pts: Point[]): Point[] => {
    const h: Point[] = [];
    for (const q of pts) {
      while (h.length >= 2 && cross(h[h.length - 2], h[h.length - 1], q) <= 0) h.pop();
      h.push(q);
    }
    h.pop(); // the last point starts the other chain
    return h;
  };
  return [...chain(p), ...chain([...p].reverse())];
}
