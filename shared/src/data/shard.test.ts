import { describe, expect, it } from "vitest";
import { type Batch, innerBatch } from "./shard.ts";

/** A text batch of `count` windows of 3 tokens, window i holding 10i, 10i+1, 10i+2. */
function windows(count: number): Batch {
  const inputs = Int32Array.from({ length: count * 3 }, (_, j) => 10 * Math.floor(j / 3) + (j % 3));
  return { inputs, labels: inputs.map((v) => v + 1), count };
}

describe("a local-SGD lease's batch, step by step", () => {
  it("gives each inner step its own samples, in step order, covering the batch once", () => {
    const batch = windows(8);
    const steps = [0, 1, 2, 3].map((s) => innerBatch(batch, s, 4));
    expect(steps.map((b) => b.count)).toEqual([2, 2, 2, 2]);
    expect([...steps[1]!.inputs]).toEqual([20, 21, 22, 30, 31, 32]);
    expect([...steps[1]!.labels]).toEqual([21, 22, 23, 31, 32, 33]);
    const seen = steps.flatMap((b) => [...b.inputs]);
    expect(seen).toEqual([...batch.inputs]);
  });

  it("shares a short last batch out evenly, wrapping around, and leaves one step's batch whole", () => {
    const short = windows(5);
    const steps = [0, 1, 2].map((s) => innerBatch(short, s, 3));
    expect(steps.map((b) => [...b.inputs].filter((_, j) => j % 3 === 0))).toEqual([
      [0, 10],
      [20, 30],
      [40, 0],
    ]);
    const images: Batch = {
      inputs: new Float32Array([1, 2, 3, 4]),
      labels: new Int32Array([7, 8]),
      count: 2,
    };
    expect(innerBatch(images, 0, 1)).toBe(images);
    expect([...innerBatch(images, 1, 2).inputs]).toEqual([3, 4]);
    expect([...innerBatch(images, 1, 2).labels]).toEqual([8]);
  });
});
