// Helpers of the reference's tests: seeded inputs, and a gradient held against central finite
// differences of its loss.
import { seededRandom } from "@pangea/shared";

/** Uniform values in ±scale from a seed. */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const next = seededRandom(seed);
  return Float64Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

/**
 * The worst relative disagreement between `grad` and (loss(p + h) − loss(p − h)) / 2h at every
 * parameter, relative to max(floor, |numeric| + |grad|). `params` is perturbed in place and
 * restored.
 */
export function worstFiniteDifference(
  params: Float64Array,
  grad: ArrayLike<number>,
  loss: () => number,
  h: number,
  floor: number,
): number {
  let worst = 0;
  for (let i = 0; i < params.length; i++) {
    const saved = params[i]!;
    params[i] = saved + h;
    const up = loss();
    params[i] = saved - h;
    const down = loss();
    params[i] = saved;
    const numeric = (up - down) / (2 * h);
    worst = Math.max(
      worst,
      Math.abs(numeric - grad[i]!) / Math.max(floor, Math.abs(numeric) + Math.abs(grad[i]!)),
    );
  }
  return worst;
}
