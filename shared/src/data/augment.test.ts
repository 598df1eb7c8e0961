import { describe, expect, it } from "vitest";
import { jitterImages, warpImage } from "./augment.ts";

const grid = (n: number) => Float32Array.from({ length: n * n }, (_, i) => i + 1);

describe("image warps", () => {
  it("is the identity without rotation, scale or shift", () => {
    const out = new Float32Array(16);
    warpImage(grid(4), out, 4, 4, [1, 0, 0, 1], [0, 0]);
    expect([...out]).toEqual([...grid(4)]);
  });

  it("shifts by whole pixels and fills the border with zeros", () => {
    const out = new Float32Array(9);
    warpImage(grid(3), out, 3, 3, [1, 0, 0, 1], [-1, 1]); // left by one, down by one
    expect([...out]).toEqual([0, 0, 0, 2, 3, 0, 5, 6, 0]);
  });

  it("interpolates half-pixel shifts bilinearly", () => {
    const out = new Float32Array(9);
    warpImage(grid(3), out, 3, 3, [1, 0, 0, 1], [0.5, 0]);
    expect(out[1]).toBeCloseTo(1.5, 6); // halfway between 1 and 2
    expect(out[0]).toBeCloseTo(0.5, 6); // halfway between the zero border and 1
  });

  it("rotates a quarter turn about the centre", () => {
    const out = new Float32Array(9);
    // Output (x', y') about the centre reads source (y', −x'): a clockwise quarter turn.
    warpImage(grid(3), out, 3, 3, [0, 1, -1, 0], [0, 0]);
    expect([...out].map((v) => Math.round(v * 1e6) / 1e6)).toEqual([7, 4, 1, 8, 5, 2, 9, 6, 3]);
  });

  it("leaves images alone when every range is zero, and warps each image on its own", () => {
    const batch = new Float32Array([...grid(4), ...grid(4)]);
    jitterImages(batch, 4, 4, { maxRotation: 0, maxScale: 0, maxShift: 0 }, Math.random);
    expect([...batch]).toEqual([...grid(4), ...grid(4)]);
    const draws = [0.5, 0.5, 1, 0.5, /* second image */ 0.5, 0.5, 0.5, 0.5];
    jitterImages(
      batch,
      4,
      4,
      { maxRotation: 10, maxScale: 0.1, maxShift: 1 },
      () => draws.shift()!,
    );
    expect([...batch.subarray(0, 4)]).toEqual([0, 1, 2, 3]); // shifted right by one
    expect([...batch.subarray(16)]).toEqual([...grid(4)]);
  });
});
