// An image-classification set as one compact binary shard: MNIST's 9,000 training and 1,000
// held-out digits take 7.9 MB (the `mnist` package's JSON, 41 MB), decoded without parsing and
// without copying the training images. A contributor fetches the run's shard once and builds
// its batches from the offsets each lease names; the edge reads MNIST's from the static assets
// (a Worker may not carry the JSON); Node and the tests build the identical bytes from the JSON.
// Values with few distinct levels (MNIST's grey levels) are byte codes into a palette; others
// (the synthetic blobs) are float32, with no palette.
//
// Layout, little-endian:
//   0  "PGMN"   4  u32 version (1)
//   8  u32 width   12 u32 classes   16 u32 train count   20 u32 test count   24 u32 level count
//   28 f32 levels[level count]: the distinct pixel values, each image byte indexes these
//   then u8 labels[train + test], then u8 pixels[(train + test) * width], train samples first;
//   with no levels, the values are f32[(train + test) * width] from the next 4-byte boundary.
import { type Dataset, sampleValues } from "./dataset.ts";

export interface ImageSplit {
  train: Dataset;
  test: Dataset;
}

/** Where the built web UI serves the shard (the edge fetches it from its static assets). */
export const MNIST_SHARD_PATH = "/data/mnist-v1.bin";

/** "PGMN" read as a little-endian u32: the first word of an image shard. */
export const IMAGE_SHARD_MAGIC = 0x4e4d4750;
const MAGIC = IMAGE_SHARD_MAGIC;
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
  const labels = new Uint8Array(samples.length);
  const codes = new Uint8Array(samples.length * PIXELS);
  samples.forEach(([digit, i], s) => {
    labels[s] = digit;
    const pixels = digits[digit]!;
    for (let p = 0; p < PIXELS; p++)
      codes[s * PIXELS + p] = codeOf.get(Math.fround(pixels[i * PIXELS + p]!))!;
  });
  return encodeCodedImageShard({
    width: PIXELS,
    classes: CLASSES,
    trainCount: order.train.length,
    levels: Float32Array.from(levels),
    labels,
    codes,
  });
}

/**
 * An image shard whose values are byte codes into a palette of at most 256 levels (MNIST's grey
 * levels; any 8-bit image set with levels i/255): samples [0, trainCount) train, the rest are
 * held out. `codes` holds `width` bytes per sample, `labels` one byte each.
 */
export function encodeCodedImageShard(set: {
  width: number;
  classes: number;
  trainCount: number;
  levels: Float32Array;
  labels: Uint8Array;
  codes: Uint8Array;
}): Uint8Array {
  const { width, classes, trainCount, levels, labels, codes } = set;
  const count = labels.length;
  if (levels.length < 1 || levels.length > 256)
    throw new Error(`${levels.length} levels do not fit a byte`);
  if (codes.length !== count * width)
    throw new Error(`${codes.length} values for ${count} samples of ${width}`);
  const labelsAt = HEADER_BYTES + levels.length * 4;
  const pixelsAt = labelsAt + count;
  const bytes = new Uint8Array(pixelsAt + codes.length);
  const view = new DataView(bytes.buffer);
  const header = [MAGIC, VERSION, width, classes, trainCount, count - trainCount, levels.length];
  for (const [i, v] of header.entries()) view.setUint32(i * 4, v, true);
  for (const [i, v] of levels.entries()) view.setFloat32(HEADER_BYTES + i * 4, v, true);
  bytes.set(labels, labelsAt);
  bytes.set(codes, pixelsAt);
  return bytes;
}

/**
 * An image-classification shard of any width and class count whose values are stored as float32
 * (no palette: `levels` 0), for data with many distinct values such as the synthetic blobs.
 */
export function encodeImageShard(train: Dataset, test: Dataset): Uint8Array {
  const width = train.inputShape.reduce((a, b) => a * b, 1);
  if (train.classes > 256) throw new Error(`${train.classes} classes do not fit a byte label`);
  const count = train.count + test.count;
  const labelsAt = HEADER_BYTES;
  const valuesAt = align4(labelsAt + count);
  const bytes = new Uint8Array(valuesAt + count * width * 4);
  const view = new DataView(bytes.buffer);
  const header = [MAGIC, VERSION, width, train.classes, train.count, test.count, 0];
  for (const [i, v] of header.entries()) view.setUint32(i * 4, v, true);
  bytes.set(train.labels, labelsAt);
  bytes.set(test.labels, labelsAt + train.count);
  const values = new Float32Array(bytes.buffer, valuesAt, count * width);
  values.set(sampleValues(train, 0, train.count));
  values.set(sampleValues(test, 0, test.count), train.count * width);
  return bytes;
}

/**
 * The training and held-out sets in a shard. Byte-coded training images stay codes viewing
 * `bytes` (MNIST: 7 MB, not 28); the held-out ones are decoded to floats for evaluation.
 * Throws, naming what is wrong, on anything but a whole, consistent shard.
 */
export function decodeImageShard(bytes: Uint8Array, name = "images"): ImageSplit {
  const fail = (why: string): never => {
    throw new Error(`not an image shard: ${why}`);
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
  if (width < 1 || width > 1 << 24) fail(`${width} values per sample`);
  if (classes < 1 || classes > 256) fail(`${classes} classes`);
  if (levelCount > 256) fail(`${levelCount} levels`);
  const count = trainCount + testCount;
  const labelsAt = HEADER_BYTES + levelCount * 4;
  // Coded values are bytes; float values (no levels) start 4-aligned.
  const valuesAt = levelCount > 0 ? labelsAt + count : align4(labelsAt + count);
  const expected = valuesAt + count * width * (levelCount > 0 ? 1 : 4);
  if (bytes.byteLength !== expected) fail(`${bytes.byteLength} bytes, the header says ${expected}`);

  const labels = Int32Array.from(bytes.subarray(labelsAt, labelsAt + count));
  for (const label of labels) if (label >= classes) fail(`label ${label}`);
  const part = (
    split: string,
    n: number,
    inputs: Float32Array | Uint8Array,
    levels?: Float32Array,
  ) =>
    ({
      name: `${name}-${split}`,
      inputShape: [width],
      classes,
      count: n,
      inputs,
      ...(levels ? { levels } : {}),
      labels: split === "train" ? labels.subarray(0, trainCount) : labels.subarray(trainCount),
    }) satisfies Dataset;
  if (levelCount === 0) {
    const at = bytes.byteOffset + valuesAt;
    const values =
      at % 4 === 0
        ? new Float32Array(bytes.buffer, at, count * width)
        : new Float32Array(bytes.slice(valuesAt).buffer);
    for (const v of values) if (!Number.isFinite(v)) fail("a value that is not finite");
    return {
      train: part("train", trainCount, values.subarray(0, trainCount * width)),
      test: part("test", testCount, values.subarray(trainCount * width)),
    };
  }
  const levels = new Float32Array(levelCount);
  for (let i = 0; i < levelCount; i++) levels[i] = view.getFloat32(HEADER_BYTES + i * 4, true);
  const codes = bytes.subarray(valuesAt);
  for (let i = 0; i < codes.length; i++)
    if (codes[i]! >= levelCount) fail(`pixel code ${codes[i]}`);
  const heldOut = codes.subarray(trainCount * width);
  return {
    train: part("train", trainCount, codes.subarray(0, trainCount * width), levels),
    test: part(
      "test",
      testCount,
      Float32Array.from(heldOut, (code) => levels[code]!),
    ),
  };
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
