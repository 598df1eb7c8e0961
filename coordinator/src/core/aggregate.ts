// Combining the updates of one version into one. Updates are lists of fp32 tensors (views over
// received frames, never copied here) in the model's parameter order.
//
// Determinism: the result depends only on the set of updates, never on their arrival order.
// `aggregate` sorts them by key (batch and lease) before anything is summed, and the robust
// aggregators sort every coordinate's values, so the same set gives the same bits.

export interface WeightedUpdate {
  /** A stable, unique sort key: e.g. epoch, batch index and lease id, zero-padded. */
  key: string;
  tensors: Float32Array[];
  /** Relative weight in the mean (sample count, staleness discount). */
  weight: number;
}

export type AggregatorKind = "mean" | "trimmedMean" | "median";

/** ‖update‖₂ over all its tensors, in float64. */
export function updateNorm(tensors: readonly Float32Array[]): number {
  let sum = 0;
  for (const t of tensors) for (let i = 0; i < t.length; i++) sum += t[i]! * t[i]!;
  return Math.sqrt(sum);
}

/** The factor that brings an update's norm down to `maxNorm` (1 when it is within it or 0 = off). */
export function clipFactor(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / norm : 1;
}

/**
 * Aggregates same-shaped updates into fresh Float32Arrays.
 *   mean          Σ wᵢ·cᵢ·uᵢ / Σ wᵢ, summed in float64 in key order (cᵢ: the clip factor)
 *   trimmedMean   per coordinate: drop the ⌈trim·n⌉ smallest and largest clipped values (rounded
 *                 up, so that a version closed short by its straggler deadline still cuts as many
 *                 as a fraction `trim` of attackers could send), at least one value kept; average
 *                 the rest (unweighted: a weight would let one update buy its way past the trim)
 *   median        per coordinate: the median of the clipped values (mean of the middle two)
 */
export function aggregate(
  updates: readonly WeightedUpdate[],
  options: { kind: AggregatorKind; trim?: number; clipNorm?: number },
): Float32Array[] {
  if (updates.length === 0) throw new Error("nothing to aggregate");
  const sorted = [...updates].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const clip = sorted.map((u) => clipFactor(updateNorm(u.tensors), options.clipNorm ?? 0));
  const shapes = sorted[0]!.tensors.map((t) => t.length);
  for (const u of sorted) {
    if (u.tensors.length !== shapes.length || u.tensors.some((t, i) => t.length !== shapes[i]))
      throw new Error("updates of different shapes cannot be aggregated");
  }
  const n = sorted.length;
  if (options.kind === "mean") {
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
  const cut =
    options.kind === "trimmedMean"
      ? Math.min(Math.ceil((options.trim ?? 0) * n - 1e-9), Math.floor((n - 1) / 2))
      : 0;
  const column = new Float64Array(n);
  return shapes.map((length, ti) => {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      for (let ui = 0; ui < n; ui++) column[ui] = sorted[ui]!.tensors[ti]![i]! * clip[ui]!;
      sortColumn(column);
      if (options.kind === "median") {
        out[i] = n % 2 === 1 ? column[(n - 1) / 2]! : (column[n / 2 - 1]! + column[n / 2]!) / 2;
      } else {
        let s = 0;
        for (let k = cut; k < n - cut; k++) s += column[k]!;
        out[i] = s / (n - 2 * cut);
      }
    }
    return out;
  });
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
