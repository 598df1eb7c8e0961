// MNIST as one compact binary shard: the same 9,000 training and 1,000 held-out digits as the
// `mnist` package's 41 MB of JSON, in 7.9 MB, decoded without parsing and without copying the
// training images. The edge fetches it as a static asset (a Worker may not carry the JSON: its
// script and memory limits); Node and the tests build the identical bytes from the JSON.
//
// Layout, little-endian:
//   0  "PGMN"   4  u32 version (1)
//   8  u32 width   12 u32 classes   16 u32 train count   20 u32 test count   24 u32 level count
//   28 f32 levels[level count]: the distinct pixel values, each image byte indexes these
//   then u8 labels[train + test], then u8 pixels[(train + test) * width], train samples first.
import type { Dataset } from "./dataset.ts";

export interface MnistSplit {
  train: Dataset;
  test: Dataset;
}

/** Where the built web UI serves the shard (the edge fetches it from its static assets). */
export const MNIST_SHARD_PATH = "/data/mnist-v1.bin";

const MAGIC = 0x4e4d4750; // "PGMN" read as a little-endian u32
const VERSION = 1;
const HEADER_BYTES = 28;
const PIXELS = 784;
const CLASSES = 10;
const HELD_OUT_PER_DIGIT = 100;

/**
 * The shard, from the package's digits (`digits[d]` is every image of digit d, 784 values each).
 * The last 100 of each digit are held out (a fixed, class-balanced 1,000), and the digits are
 * interleaved so that any prefix of the training set holds every class.
 */
export function encodeMnistShard(digits: readonly (readonly number[])[]): Uint8Array {
  if (digits.length !== CLASSES)
    throw new Error(`expected ${CLASSES} digits, got ${digits.length}`);
  const counts = digits.map((d) => d.length / PIXELS);
  const order: { train: [number, number][]; test: [number, number][] } = { train: [], test: [] };
  const most = Math.max(...counts);
  for (let i = 0; i < most; i++)
    for (let digit = 0; digit < CLASSES; digit++) {
      const count = counts[digit]!;
      if (i >= count) continue;
      (i >= count - HELD_OUT_PER_DIGIT ? order.test : order.train).push([digit, i]);
    }
  const samples = [...order.train, ...order.test];
  // The palette: every distinct value, as the float32 the dataset would have held.
  const levels = [...new Set(digits.flatMap((d) => [...new Set(d.map(Math.fround))]))].sort(
    (a, b) => a - b,
  );
  if (levels.length > 256)
    throw new Error(`${levels.length} distinct pixel values do not fit a byte`);
  const codeOf = new Map(levels.map((v, i) => [v, i]));

  const labelsAt = HEADER_BYTES + levels.length * 4;
  const pixelsAt = labelsAt + samples.length;
  const bytes = new Uint8Array(pixelsAt + samples.length * PIXELS);
  const view = new DataView(bytes.buffer);
  const header = [MAGIC, VERSION, PIXELS, CLASSES, order.train.length, order.test.length];
  for (const [i, v] of [...header, levels.length].entries()) view.setUint32(i * 4, v, true);
  for (const [i, v] of levels.entries()) view.setFloat32(HEADER_BYTES + i * 4, v, true);
  samples.forEach(([digit, i], s) => {
    bytes[labelsAt + s] = digit;
    const pixels = digits[digit]!;
    for (let p = 0; p < PIXELS; p++)
      bytes[pixelsAt + s * PIXELS + p] = codeOf.get(Math.fround(pixels[i * PIXELS + p]!))!;
  });
  return bytes;
}

/**
 * The training and held-out sets in a shard. The training images stay byte codes viewing
 * `bytes` (7 MB, not 28); the 1,000 held-out ones are decoded to floats for evaluation.
 * Throws, naming what is wrong, on anything but a whole, consistent shard.
 */
export function decodeMnistShard(bytes: Uint8Array): MnistSplit {
  const fail = (why: string): never => {
    throw new Error(`not an MNIST shard: ${why}`);
  };
  if (bytes.byteLength < HEADER_BYTES) fail(`${bytes.byteLength} bytes is shorter than a header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (i: number) => view.getUint32(i * 4, true);
  if (u32(0) !== MAGIC) fail("wrong magic");
  if (u32(1) !== VERSION) fail(`version ${u32(1)}, this code reads ${VERSION}`);
  const [width, classes, trainCount, testCount, levelCount] = [
    u32(2),
    u32(3),
    u32(4),
    u32(5),
    u32(6),
  ];
  if (width !== PIXELS || classes !== CLASSES) fail(`${width} pixels and ${classes} classes`);
  if (levelCount === 0 || levelCount > 256) fail(`${levelCount} levels`);
  const count = trainCount + testCount;
  const labelsAt = HEADER_BYTES + levelCount * 4;
  const pixelsAt = labelsAt + count;
  const expected = pixelsAt + count * width;
  if (bytes.byteLength !== expected) fail(`${bytes.byteLength} bytes, the header says ${expected}`);

  const levels = new Float32Array(levelCount);
  for (let i = 0; i < levelCount; i++) levels[i] = view.getFloat32(HEADER_BYTES + i * 4, true);
  const labels = Int32Array.from(bytes.subarray(labelsAt, pixelsAt));
  for (const label of labels) if (label >= classes) fail(`label ${label}`);
  const codes = bytes.subarray(pixelsAt);
  for (let i = 0; i < codes.length; i++)
    if (codes[i]! >= levelCount) fail(`pixel code ${codes[i]}`);

  const train: Dataset = {
    name: "mnist-train",
    inputShape: [width],
    classes,
    count: trainCount,
    inputs: codes.subarray(0, trainCount * width),
    levels,
    labels: labels.subarray(0, trainCount),
  };
  const heldOut = codes.subarray(trainCount * width);
  const test: Dataset = {
    name: "mnist-test",
    inputShape: [width],
    classes,
    count: testCount,
    inputs: Float32Array.from(heldOut, (code) => levels[code]!),
    labels: labels.subarray(trainCount),
  };
  return { train, test };
}
