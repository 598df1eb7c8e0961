// Combining the updates of one version into one. Updates are lists of fp32 tensors (views over
// received frames, never copied here) in the model's parameter order.
//
// Determinism: the result depends only on the set of updates, never on their arrival order.
// `aggregate` sorts them by key (batch and lease) before anything is summed, and the robust
// aggregators sort every coordinate's values, so the same set gives the same bits.
import { seededRandom } from "../random.ts";

export interface WeightedUpdate {
  /** A stable, unique sort key: e.g. epoch, batch index and lease id, zero-padded. */
  key: string;
  tensors: Float32Array[];
  /** Relative weight in the mean (sample count, staleness discount). */
  weight: number;
}

export type AggregatorKind = "mean" | "trimmedMean" | "median" | "centeredClip";

export interface AggregateOptions {
  kind: AggregatorKind;
  /** trimmedMean: the fraction cut from each end of every coordinate's sorted values. */
  trim?: number;
  /** Per-update L2 norm clipping before anything else; 0 or absent turns it off. */
  clipNorm?: number;
  /**
   * Bucketing (Karimireddy, He and Jaggi, 2022): the updates are shuffled by `seed` and averaged
   * in buckets of this many before the robust rule sees the bucket means. 0 or 1: off.
   */
  bucket?: number;
  /** The bucket shuffle's seed; the run passes one per version, so buckets differ between versions. */
  seed?: number;
  /** centeredClip: the clipping radius τ; 0 or absent: the median distance to the centre, per iteration. */
  radius?: number;
  /** centeredClip: iterations from the coordinate-wise median (default 3). */
  iterations?: number;
}

/** ‖update‖₂ over all its tensors, in float64. */
export function updateNorm(tensors: readonly ArrayLike<number>[]): number {
  let sum = 0;
  for (const t of tensors) for (let i = 0; i < t.length; i++) sum += t[i]! * t[i]!;
  return Math.sqrt(sum);
}

/** The factor that brings an update's norm down to `maxNorm` (1 when it is within it or 0 = off). */
export function clipFactor(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / norm : 1;
}

/** What a robust rule sees: an update (or a bucket's mean) times a scale (its clip factor). */
interface Point {
  tensors: readonly ArrayLike<number>[];
  scale: number;
}

/**
 * Aggregates same-shaped updates into fresh Float32Arrays.
 *   mean          Σ wᵢ·cᵢ·uᵢ / Σ wᵢ, summed in float64 in key order (cᵢ: the clip factor)
 *   trimmedMean   per coordinate: drop the ⌈trim·n⌉ smallest and largest clipped values (rounded
 *                 up, so that a version closed short by its straggler deadline still cuts as many
 *                 as a fraction `trim` of attackers could send), at least one value kept; average
 *                 the rest (unweighted: a weight would let one update buy its way past the trim)
 *   median        per coordinate: the median of the clipped values (mean of the middle two)
 *   centeredClip  v₀ = the coordinate-wise median, then `iterations` times
 *                 v ← v + (1/n) Σ min(1, τ/‖xᵢ − v‖)·(xᵢ − v)   (Karimireddy, He and Jaggi, 2021)
 *                 with τ = `radius`, or the median of ‖xᵢ − v‖ when none is set: an update can pull
 *                 the centre at most τ/n, however far away it is, and half the updates are within τ.
 * The robust rules are unweighted; with `bucket` they see bucket means instead of the updates.
 */
export function aggregate(
  updates: readonly WeightedUpdate[],
  options: AggregateOptions,
): Float32Array[] {
  if (updates.length === 0) throw new Error("nothing to aggregate");
  const sorted = [...updates].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const maxNorm = options.clipNorm ?? 0;
  // Without clipping no norm is needed: a pass over every update saved.
  const clip = sorted.map((u) => (maxNorm > 0 ? clipFactor(updateNorm(u.tensors), maxNorm) : 1));
  const shapes = sorted[0]!.tensors.map((t) => t.length);
  for (const u of sorted) {
    if (u.tensors.length !== shapes.length || u.tensors.some((t, i) => t.length !== shapes[i]))
      throw new Error("updates of different shapes cannot be aggregated");
  }
  if (options.kind === "mean") {
    // One unclipped update is its own mean, bit for bit (float32 → float64 → float32 is exact):
    // an asynchronous run's every version, without a float64 pass.
    if (sorted.length === 1 && clip[0] === 1) return sorted[0]!.tensors.map((t) => t.slice());
    const total = sorted.reduce((s, u) => s + u.weight, 0);
    return shapes.map((length, ti) => {
      const acc = new Float64Array(length);
      for (const [ui, u] of sorted.entries()) {
        const f = (u.weight * clip[ui]!) / total;
        const t = u.tensors[ti]!;
        for (let i = 0; i < length; i++) acc[i]! += f * t[i]!;
      }
      return Float32Array.from(acc);
    });
  }
  let points: Point[] = sorted.map((u, ui) => ({ tensors: u.tensors, scale: clip[ui]! }));
  if ((options.bucket ?? 0) > 1) points = bucketMeans(points, options.bucket!, options.seed ?? 0);
  if (options.kind === "centeredClip")
    return centeredClip(points, shapes, options.radius ?? 0, options.iterations ?? 3).map((t) =>
      Float32Array.from(t),
    );
  const n = points.length;
  const cut =
    options.kind === "trimmedMean"
      ? Math.min(Math.ceil((options.trim ?? 0) * n - 1e-9), Math.floor((n - 1) / 2))
      : 0;
  return coordinatewise(points, shapes, options.kind === "median" ? "median" : cut).map((t) =>
    Float32Array.from(t),
  );
}

/**
 * Per coordinate over the points' scaled values: the median, or the mean after cutting `cut`
 * values from each end (0: none).
 */
function coordinatewise(
  points: readonly Point[],
  shapes: readonly number[],
  rule: "median" | number,
): Float64Array[] {
  const n = points.length;
  const column = new Float64Array(n);
  return shapes.map((length, ti) => {
    const out = new Float64Array(length);
    for (let i = 0; i < length; i++) {
      for (let ui = 0; ui < n; ui++) column[ui] = points[ui]!.tensors[ti]![i]! * points[ui]!.scale;
      sortColumn(column);
      if (rule === "median") {
        out[i] = n % 2 === 1 ? column[(n - 1) / 2]! : (column[n / 2 - 1]! + column[n / 2]!) / 2;
      } else {
        let s = 0;
        for (let k = rule; k < n - rule; k++) s += column[k]!;
        out[i] = s / (n - 2 * rule);
      }
    }
    return out;
  });
}

/**
 * The means of buckets of `size` points, after a seeded shuffle of the key-sorted points (so the
 * same set and seed give the same buckets whatever the arrival order). The last bucket may be
 * smaller. Attackers spread over buckets are diluted by honest members, which shrinks the spread
 * they can hide in relative to the honest bucket means' spread.
 */
function bucketMeans(points: readonly Point[], size: number, seed: number): Point[] {
  const order = points.map((_, i) => i);
  const random = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const buckets: Point[] = [];
  for (let b = 0; b < order.length; b += size) {
    const members = order.slice(b, b + size).map((i) => points[i]!);
    const tensors = members[0]!.tensors.map((t, ti) => {
      const acc = new Float64Array(t.length);
      for (const p of members) {
        const u = p.tensors[ti]!;
        for (let i = 0; i < acc.length; i++) acc[i]! += p.scale * u[i]!;
      }
      for (let i = 0; i < acc.length; i++) acc[i]! /= members.length;
      return acc;
    });
    buckets.push({ tensors, scale: 1 });
  }
  return buckets;
}

/** CenteredClip, in float64, in the points' order (see `aggregate`). */
function centeredClip(
  points: readonly Point[],
  shapes: readonly number[],
  radius: number,
  iterations: number,
): Float64Array[] {
  const n = points.length;
  const v = coordinatewise(points, shapes, "median");
  const distance = new Float64Array(n);
  for (let it = 0; it < iterations; it++) {
    for (const [ui, p] of points.entries()) {
      let sum = 0;
      for (const [ti, t] of p.tensors.entries()) {
        const c = v[ti]!;
        for (let i = 0; i < t.length; i++) {
          const d = t[i]! * p.scale - c[i]!;
          sum += d * d;
        }
      }
      distance[ui] = Math.sqrt(sum);
    }
    const tau = radius > 0 ? radius : medianOf(distance);
    const step = v.map((c) => new Float64Array(c.length));
    for (const [ui, p] of points.entries()) {
      const f = distance[ui]! > tau ? tau / distance[ui]! : 1;
      for (const [ti, t] of p.tensors.entries()) {
        const c = v[ti]!;
        const s = step[ti]!;
        for (let i = 0; i < t.length; i++) s[i]! += f * (t[i]! * p.scale - c[i]!);
      }
    }
    for (const [ti, c] of v.entries()) {
      const s = step[ti]!;
      for (let i = 0; i < c.length; i++) c[i]! += s[i]! / n;
    }
  }
  return v;
}

function medianOf(values: Float64Array): number {
  const c = values.slice();
  sortColumn(c);
  const n = c.length;
  return n % 2 === 1 ? c[(n - 1) / 2]! : (c[n / 2 - 1]! + c[n / 2]!) / 2;
}

/**
 * Sorts a column of values in place. A version has a few dozen updates at most, and for so few
 * an inline insertion sort is about 10x faster than the typed array's sort call, which the robust
 * aggregators make once per coordinate (100,000 times per MNIST version).
 */
function sortColumn(column: Float64Array): void {
  const n = column.length;
  if (n > 48) {
    column.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const v = column[i]!;
    let j = i - 1;
    while (j >= 0 && column[j]! > v) {
      column[j + 1] = column[j]!;
      j--;
    }
    column[j + 1] = v;
  }
}
