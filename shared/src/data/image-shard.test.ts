import { describe, expect, it } from "vitest";
import { gatherBatch, sampleValues } from "./dataset.ts";
import { decodeImageShard, encodeMnistShard, loadMnist, mnistDigits } from "./mnist.ts";

describe("the MNIST shard", () => {
  const digits = mnistDigits();
  const shard = encodeMnistShard(digits);

  it("holds every digit exactly as the package's float32 values, in 7.9 MB", () => {
    expect(shard.byteLength).toBeLessThan(8e6);
    const { train, test } = decodeImageShard(shard);
    // Interleaved: training sample 10·i + d is the i-th image of digit d (while all have one).
    for (const [sample, digit, image] of [
      [0, 0, 0],
      [13, 3, 1],
      [5009, 9, 500],
    ] as const) {
      const { inputs, labels } = gatherBatch(train, [sample]);
      expect(labels[0]).toBe(digit);
      const expected = Float32Array.from(digits[digit]!.slice(image * 784, (image + 1) * 784));
      expect(inputs).toEqual(expected);
    }
    // The held-out set is the last 100 of each digit, as floats.
    expect(test.inputs).toBeInstanceOf(Float32Array);
    const last = digits[7]!.length / 784 - 1;
    const j = [...test.labels].lastIndexOf(7);
    expect(sampleValues(test, j, 1)).toEqual(
      Float32Array.from(digits[7]!.slice(last * 784, (last + 1) * 784)),
    );
  });

  it("keeps the training images as byte codes viewing the shard, not a copy", () => {
    const { train } = decodeImageShard(shard);
    expect(train.inputs).toBeInstanceOf(Uint8Array);
    expect(train.inputs.buffer).toBe(shard.buffer);
    expect(train.levels!.length).toBeLessThanOrEqual(256);
  });

  it("is what loadMnist serves", () => {
    const a = loadMnist();
    const b = decodeImageShard(shard);
    expect(gatherBatch(a.train, [5, 500, 8999])).toEqual(gatherBatch(b.train, [5, 500, 8999]));
    expect(a.test.inputs).toEqual(b.test.inputs);
  });

  it("refuses anything but a whole, consistent shard, naming what is wrong", () => {
    const damaged = (
      change: (bytes: Uint8Array, view: DataView) => void,
      length = shard.length,
    ) => {
      const bytes = shard.slice(0, length);
      change(bytes, new DataView(bytes.buffer));
      return () => decodeImageShard(bytes, "mnist");
    };
    expect(damaged(() => {}, 10)).toThrow(/shorter than a header/);
    expect(damaged(() => {}, shard.length - 1)).toThrow(/the header says/);
    expect(damaged((b) => (b[0] = 0))).toThrow(/wrong magic/);
    expect(damaged((_, v) => v.setUint32(4, 2, true))).toThrow(/version 2/);
    expect(damaged((_, v) => v.setUint32(16, 0xffffffff, true))).toThrow(/the header says/);
    const levels = new DataView(shard.buffer).getUint32(24, true);
    expect(damaged((b) => (b[28 + levels * 4] = 10))).toThrow(/label 10/);
    // Three grey levels, so a byte may name one that does not exist.
    const flat = Array.from({ length: 10 }, (_, d) =>
      Array.from({ length: 101 * 784 }, (_, p) => [0, 0.5, 1][(p + d) % 3]!),
    );
    const small = encodeMnistShard(flat);
    expect(decodeImageShard(small).train.levels).toEqual(new Float32Array([0, 0.5, 1]));
    small[small.length - 1] = 3;
    expect(() => decodeImageShard(small)).toThrow(/pixel code 3/);
  });
});
