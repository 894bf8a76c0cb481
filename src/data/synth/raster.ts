/**
 * A tiny software rasteriser that draws an RGB image and its class mask together.
 *
 * Every shape is a signed distance in pixel units (negative inside). One evaluation at a pixel
 * centre gives both the image's anti-aliased coverage (clamp(0.5 - d), a box filter for straight-ish
 * edges) and the mask's hard inside test (d < 0), so the mask is exactly the parsing of the drawn
 * image: a pixel takes a shape's class when that shape covers more than half of it. Later fills
 * overwrite earlier ones, so drawing order is occlusion. Coordinates are floats; pixel (i, j) spans
 * [i, i+1) x [j, j+1).
 *
 * Fills walk a quadtree over the shape's box and test each block once at its centre: because |sd|
 * away from edges never exceeds the true distance (give or take SD_SLACK), a block whose centre is
 * far enough outside (or inside) is skipped (or filled) whole. Only blocks along edges are evaluated
 * per pixel, so cost follows a shape's perimeter, not its area.
 */
export type Point = readonly [number, number];
export type RGB = readonly [number, number, number];
/** A flat colour, or one computed per pixel centre and written into `out` (no allocation per pixel). */
export type Paint = RGB | ((x: number, y: number, out: number[]) => void);

export interface Shape {
  /** [x0, y0, x1, y1]: outside it sd >= 0, so fills only visit this box (grown by the AA margin). */
  readonly box: readonly [number, number, number, number];
  /**
   * Signed distance with the sign exact. Where it exceeds one pixel its magnitude is at most the true
   * distance plus SD_SLACK (the quadtree relies on that); near edges it need only be accurate to
   * first order.
   */
  sd(x: number, y: number): number;
}

/** Filled ellipse centred at (cx, cy), its x radius turned by `angle` radians (clockwise, y down). */
export function ellipse(cx: number, cy: number, rx: number, ry: number, angle = 0): Shape {
  rx = Math.max(rx, 1e-3);
  ry = Math.max(ry, 1e-3);
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const ex = Math.hypot(rx * c, ry * s);
  const ey = Math.hypot(rx * s, ry * c);
  const rMin = Math.min(rx, ry);
  return {
    box: [cx - ex, cy - ey, cx + ex, cy + ey],
    // f / |grad f| with f = k0 - 1 (k0 the ellipse's own norm): first-order accurate at the edge,
    // and, f being convex, never more than the true distance outside. Deep inside it can overshoot
    // along the long axis, so there it is capped by the exact bound (1 - k0) * min radius.
    sd(x, y) {
      const dx = x - cx;
      const dy = y - cy;
      const u = dx * c + dy * s;
      const v = dy * c - dx * s;
      const a = u / rx;
      const b = v / ry;
      const k0 = Math.sqrt(a * a + b * b);
      const k1 = Math.sqrt((a * a) / (rx * rx) + (b * b) / (ry * ry));
      if (k1 === 0) return -rMin;
      const d = (k0 * (k0 - 1)) / k1;
      return d >= -1 ? d : Math.max(d, (k0 - 1) * rMin);
    },
  };
}

/** Filled simple polygon (either winding). */
export function polygon(points: readonly Point[]): Shape {
  const n = points.length;
  const xs = Float64Array.from(points, (p) => p[0]);
  const ys = Float64Array.from(points, (p) => p[1]);
  return {
    box: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)],
    sd(x, y) {
      let d = Infinity;
      let inside = false;
      for (let i = 0, j = n - 1; i < n; j = i++) {
        const ex = xs[j] - xs[i];
        const ey = ys[j] - ys[i];
        const wx = x - xs[i];
        const wy = y - ys[i];
        const len2 = ex * ex + ey * ey;
        const t = len2 > 0 ? Math.min(1, Math.max(0, (wx * ex + wy * ey) / len2)) : 0;
        const bx = wx - ex * t;
        const by = wy - ey * t;
        d = Math.min(d, bx * bx + by * by);
        // Crossing-number test on the same edge.
        if (ys[i] > y !== ys[j] > y && x < xs[i] + (ex * (y - ys[i])) / ey) inside = !inside;
      }
      return inside ? -Math.sqrt(d) : Math.sqrt(d);
    },
  };
}

/**
 * Thick polyline with round caps and joins. `width` is one width, or one per point (linearly
 * interpolated along each segment) for tapered strokes such as brows.
 */
export function stroke(points: readonly Point[], width: number | readonly number[]): Shape {
  const n = points.length;
  const xs = Float64Array.from(points, (p) => p[0]);
  const ys = Float64Array.from(points, (p) => p[1]);
  const rs = Float64Array.from(points, (_, i) => (typeof width === 'number' ? width : width[i]) / 2);
  const rMax = Math.max(...rs);
  return {
    box: [Math.min(...xs) - rMax, Math.min(...ys) - rMax, Math.max(...xs) + rMax, Math.max(...ys) + rMax],
    sd(x, y) {
      // Math.hypot is several times slower than sqrt in V8; this loop is hot.
      let d = Math.sqrt((x - xs[0]) ** 2 + (y - ys[0]) ** 2) - rs[0];
      for (let i = 0; i + 1 < n; i++) {
        const ex = xs[i + 1] - xs[i];
        const ey = ys[i + 1] - ys[i];
        const wx = x - xs[i];
        const wy = y - ys[i];
        const len2 = ex * ex + ey * ey;
        const t = len2 > 0 ? Math.min(1, Math.max(0, (wx * ex + wy * ey) / len2)) : 0;
        const bx = wx - ex * t;
        const by = wy - ey * t;
        d = Math.min(d, Math.sqrt(bx * bx + by * by) - (rs[i] + (rs[i + 1] - rs[i]) * t));
      }
      return d;
    },
  };
}

/** `segments + 1` points on the quadratic Bézier p0 -> p2 pulled towards control point p1. */
export function quadBezier(p0: Point, p1: Point, p2: Point, segments = 12): Point[] {
  const out: Point[] = [];
  for (let i = 0; i <= segments; i++) {
    const t = i / segments;
    const a = (1 - t) * (1 - t);
    const b = 2 * (1 - t) * t;
    const c = t * t;
    out.push([a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]]);
  }
  return out;
}

export function union(...shapes: Shape[]): Shape {
  return {
    box: [
      Math.min(...shapes.map((s) => s.box[0])),
      Math.min(...shapes.map((s) => s.box[1])),
      Math.max(...shapes.map((s) => s.box[2])),
      Math.max(...shapes.map((s) => s.box[3])),
    ],
    sd(x, y) {
      let d = Infinity;
      for (const s of shapes) d = Math.min(d, s.sd(x, y));
      return d;
    },
  };
}

/** The part of `a` inside `b` (an iris clipped by its eyelids, teeth clipped by the lips). */
export function intersect(a: Shape, b: Shape): Shape {
  return {
    box: [
      Math.max(a.box[0], b.box[0]),
      Math.max(a.box[1], b.box[1]),
      Math.min(a.box[2], b.box[2]),
      Math.min(a.box[3], b.box[3]),
    ],
    sd: (x, y) => Math.max(a.sd(x, y), b.sd(x, y)),
  };
}

/** The outline of `shape`, `width` thick, centred on its edge (glasses rims, hoops). */
export function ring(shape: Shape, width: number): Shape {
  const h = width / 2;
  const [x0, y0, x1, y1] = shape.box;
  return { box: [x0 - h, y0 - h, x1 + h, y1 + h], sd: (x, y) => Math.abs(shape.sd(x, y)) - h };
}

interface Fill {
  shape: Shape;
  paint: Paint;
  cls: number | undefined;
  opacity: number;
  within: number | undefined;
  x1: number;
  y1: number;
}

/** How far (pixels) |sd| may overestimate the distance away from edges (tapered strokes do, slightly). */
const SD_SLACK = 0.25;

export interface FillOptions {
  /** Multiplies coverage: translucent lenses, soft shading. */
  opacity?: number;
  /** Paint only over pixels the mask already gives this class (hair strands stay on the hair). */
  within?: number;
}

export class Canvas {
  readonly rgb: Uint8Array;
  readonly mask: Uint8Array;
  private readonly colour: number[] = [0, 0, 0];

  constructor(readonly size: number) {
    this.rgb = new Uint8Array(size * size * 3);
    this.mask = new Uint8Array(size * size);
  }

  /** Paints every pixel and sets the whole mask to `cls` (backgrounds). */
  fillAll(paint: Paint, cls: number): void {
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) this.blend(x, y, paint, 1);
    }
    this.mask.fill(cls);
  }

  /**
   * Blends `paint` over the image by coverage x opacity and, when `cls` is given, labels the pixels
   * whose centre is inside. Without `cls` the fill is image-only (shading, translucent lenses).
   */
  fill(shape: Shape, paint: Paint, cls?: number, { opacity = 1, within }: FillOptions = {}): void {
    const [bx0, by0, bx1, by1] = shape.box;
    const x0 = Math.max(0, Math.floor(bx0 - 0.5));
    const y0 = Math.max(0, Math.floor(by0 - 0.5));
    const x1 = Math.min(this.size - 1, Math.ceil(bx1 + 0.5));
    const y1 = Math.min(this.size - 1, Math.ceil(by1 + 0.5));
    if (x1 < x0 || y1 < y0) return;
    let span = 2;
    while (span < Math.max(x1 - x0, y1 - y0) + 1) span *= 2;
    this.block({ shape, paint, cls, opacity, within, x1, y1 }, x0, y0, span);
  }

  /** One quadtree block [bx, bx+w) x [by, by+w) of a fill, clipped to (f.x1, f.y1). */
  private block(f: Fill, bx: number, by: number, w: number): void {
    if (bx > f.x1 || by > f.y1) return;
    const xe = Math.min(bx + w - 1, f.x1);
    const ye = Math.min(by + w - 1, f.y1);
    if (w > 2) {
      const d = f.shape.sd(bx + w / 2, by + w / 2);
      // Distance from the block centre to its farthest pixel centre, plus the AA half-pixel.
      const reach = (w / 2 - 0.5) * Math.SQRT2 + 0.5 + SD_SLACK;
      if (d > reach) return;
      if (d >= -reach) {
        const h = w / 2;
        this.block(f, bx, by, h);
        this.block(f, bx + h, by, h);
        this.block(f, bx, by + h, h);
        this.block(f, bx + h, by + h, h);
        return;
      }
      for (let y = by; y <= ye; y++) {
        for (let x = bx; x <= xe; x++) this.pixel(f, x, y, -1);
      }
      return;
    }
    for (let y = by; y <= ye; y++) {
      for (let x = bx; x <= xe; x++) this.pixel(f, x, y, f.shape.sd(x + 0.5, y + 0.5));
    }
  }

  /** Draws one pixel of a fill whose signed distance at the pixel centre is d. */
  private pixel(f: Fill, x: number, y: number, d: number): void {
    const i = y * this.size + x;
    if (d >= 0.5 || (f.within !== undefined && this.mask[i] !== f.within)) return;
    this.blend(x, y, f.paint, (d <= -0.5 ? 1 : 0.5 - d) * f.opacity);
    if (f.cls !== undefined && d < 0) this.mask[i] = f.cls;
  }

  private blend(x: number, y: number, paint: Paint, a: number): void {
    let c: ArrayLike<number> = paint as RGB;
    if (typeof paint === 'function') {
      paint(x + 0.5, y + 0.5, this.colour);
      c = this.colour;
    }
    const rgb = this.rgb;
    const o = (y * this.size + x) * 3;
    rgb[o] = Math.round(rgb[o] + (c[0] - rgb[o]) * a);
    rgb[o + 1] = Math.round(rgb[o + 1] + (c[1] - rgb[o + 1]) * a);
    rgb[o + 2] = Math.round(rgb[o + 2] + (c[2] - rgb[o + 2]) * a);
  }
}
