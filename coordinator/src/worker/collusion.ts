// Attackers who hide inside the honest spread, for the robust-aggregation tests and bench.
// Colluding sessions pool the honest updates they computed themselves (they know nothing of the
// honest workers' updates) and all send the same forged update in their place:
//   ALIE  μ − z·σ, coordinate-wise over the pool ("A Little Is Enough", Baruch, Baruch and
//         Goldberg, 2019): every coordinate is pushed the same way, by less than the spread, so
//         that no coordinate-wise rule sees an outlier
//   IPM   −ε·μ (inner product manipulation, Xie, Koyejo and Gupta, 2020): a small step against the
//         descent direction, close to zero, where the median and the trim look.
//   copy  freeloaders: every member sends the group's first honest update again, computed on
//         another lease (only redundancy can tell it from real work).

export type CollusionAttack =
  | { kind: "alie"; z: number }
  | { kind: "ipm"; epsilon: number }
  | { kind: "copy" };

export class Collusion {
  private pool: Float32Array[] = [];
  /** Forged updates sent so far, by all members. */
  forged = 0;

  constructor(
    readonly attack: CollusionAttack,
    /** The colluding sessions: the pool holds their latest `members` honest updates (at least 2). */
    readonly members: number,
  ) {}

  /** Adds a member's honest update to the pool and returns what the member sends instead. */
  forge(honest: Float32Array): Float32Array {
    if (this.attack.kind === "copy") {
      this.forged++;
      if (this.pool.length === 0) this.pool.push(honest.slice());
      return this.pool[0]!.slice();
    }
    this.pool.push(honest.slice());
    while (this.pool.length > Math.max(2, this.members)) this.pool.shift();
    const n = this.pool.length;
    const out = new Float32Array(honest.length);
    for (let i = 0; i < out.length; i++) {
      let sum = 0;
      for (const u of this.pool) sum += u[i]!;
      const mean = sum / n;
      if (this.attack.kind === "ipm") {
        out[i] = -this.attack.epsilon * mean;
        continue;
      }
      let squares = 0;
      for (const u of this.pool) squares += (u[i]! - mean) ** 2;
      out[i] = mean - this.attack.z * Math.sqrt(squares / Math.max(1, n - 1));
    }
    this.forged++;
    return out;
  }
}

/**
 * ALIE's z for n voters of which f collude: the largest shift that keeps the forged value closer
 * to the mean than s = ⌊n/2 + 1⌋ − f honest values are, z = Φ⁻¹((n − s)/n) (Baruch et al., §3).
 */
export function alieZ(n: number, f: number): number {
  const s = Math.floor(n / 2 + 1) - f;
  return inverseNormal((n - s) / n);
}

/** Φ⁻¹(p), Acklam's rational approximation (relative error under 1.2e-9). */
export function inverseNormal(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`inverseNormal: p must be in (0, 1), got ${p}`);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
    4.374664141464968, 2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}
