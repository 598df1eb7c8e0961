// Helpers of the kernel tests: fresh seeded inputs and the comparison against a float64 reference.
import { expect } from "vitest";

let seed = 1;

/** Uniform values in ±scale, a fresh stream per call (mulberry32), so shapes get different data. */
export function random(n: number, scale = 1): Float32Array {
  let a = (seed++ * 0x9e3779b9) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** max|gpu − ref| ≤ rtol · max|ref|, every element written and finite. */
export function expectClose(
  gpu: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-4,
): void {
  expect(gpu.length).toBe(expected.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const g = gpu[i]!;
    if (!Number.isFinite(g))
      throw new Error(`element ${i} is ${g} (unwritten or overflowed); expected ${expected[i]}`);
    worst = Math.max(worst, Math.abs(g - expected[i]!));
  }
  expect(worst / Math.max(scale, 1e-30)).toBeLessThanOrEqual(rtol);
}
