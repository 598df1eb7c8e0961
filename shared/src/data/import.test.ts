import { describe, expect, it } from "vitest";
import { sampleValues } from "./dataset.ts";
import { DatasetImportError, describeShard, importImages, importText } from "./import.ts";
import { decodeShard } from "./shard.ts";

/** An IDX file: type byte, then big-endian dimensions and values. */
function idx(type: number, shape: number[], values: ArrayLike<number>): Uint8Array {
  const size = type === 0x08 ? 1 : 4;
  const at = 4 + shape.length * 4;
  const out = new Uint8Array(at + values.length * size);
  const view = new DataView(out.buffer);
  out[2] = type;
  out[3] = shape.length;
  for (const [i, d] of shape.entries()) view.setUint32(4 + i * 4, d, false);
  for (let i = 0; i < values.length; i++)
    if (size === 1) out[at + i] = values[i]!;
    else view.setFloat32(at + i * 4, values[i]!, false);
  return out;
}

/** A .npy file (version 1) as numpy.save writes it. */
function npy(descr: string, shape: number[], data: Uint8Array, fortran = false): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': (${dims}), }`;
  header += `${" ".repeat(63 - ((10 + header.length) % 64))}\n`;
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, 10 + header.length);
  return out;
}

const refusal = (f: () => unknown): string[] => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetImportError);
    return (e as DatasetImportError).problems;
  }
  throw new Error("expected a refusal");
};

// 40 images of 2×3 pixels, sorted by class as some files are (image i has label floor(i / 10));
// each image's first pixel says which image it is.
const N = 40;
const pixels = Uint8Array.from(
  { length: N * 6 },
  (_, k) => (Math.floor(k / 6) * 6 + (k % 6)) % 256,
);
const labelsOf = Uint8Array.from({ length: N }, (_, i) => Math.floor(i / 10));

describe("importing an image set", () => {
  it("reads IDX files as MNIST ships them: every image with its label, shuffled, a tenth held out", () => {
    const shard = decodeShard(
      importImages(idx(0x08, [N, 2, 3], pixels), idx(0x08, [N], labelsOf)),
      "x",
    );
    expect(describeShard(shard)).toEqual({
      kind: "images",
      train: 36,
      validation: 4,
      classes: 4,
      width: 6,
    });
    if (shard.kind !== "images") throw new Error("images");
    const seen = new Set<number>();
    for (const part of [shard.train, shard.test]) {
      const values = sampleValues(part, 0, part.count);
      for (let s = 0; s < part.count; s++) {
        // The first pixel names the image (i * 6 / 255): its label must have come with it.
        const image = Math.round((values[s * 6]! * 255) / 6);
        expect(part.labels[s]).toBe(labelsOf[image]);
        expect(values[s * 6 + 5]).toBeCloseTo(pixels[image * 6 + 5]! / 255, 6);
        seen.add(image);
      }
    }
    expect(seen.size).toBe(N);
    // The shuffle mixes the sorted classes: the held-out four are not all of the last class.
    expect(new Set(shard.test.labels).size).toBeGreaterThan(1);
  });

  it("reads a .npy pair: float32 images and int64 labels", () => {
    const floats = new Float32Array(N * 6).map((_, k) => k / 1000);
    const labels = new BigInt64Array(N).map((_, i) => BigInt(i % 3));
    const shard = decodeShard(
      importImages(
        npy("<f4", [N, 6], new Uint8Array(floats.buffer)),
        npy("<i8", [N], new Uint8Array(labels.buffer)),
      ),
      "x",
    );
    expect(describeShard(shard)).toMatchObject({ classes: 3, width: 6, train: 36 });
    if (shard.kind !== "images") throw new Error("images");
    const values = sampleValues(shard.train, 0, 1);
    const image = Math.round(values[0]! * 1000) / 6;
    expect(shard.train.labels[0]).toBe(image % 3);
  });

  it("refuses what cannot be a dataset, one sentence per problem, and says what it is", () => {
    const images = idx(0x08, [N, 2, 3], pixels);
    const labels = idx(0x08, [N], labelsOf);
    expect(refusal(() => importImages(images.subarray(0, 100), labels))).toEqual([
      `the images file is truncated: its header promises ${images.length} bytes, the file has 100`,
    ]);
    expect(refusal(() => importImages(new TextEncoder().encode("hello"), labels))[0]).toMatch(
      /neither an IDX file .* nor a NumPy .npy file \(wrong magic\)/,
    );
    expect(refusal(() => importImages(Uint8Array.of(0x1f, 0x8b, 8, 0), labels))[0]).toMatch(
      /gzip-compressed: decompress it first/,
    );
    const outOfRange = labelsOf.slice();
    outOfRange[7] = 12;
    expect(
      refusal(() => importImages(images, idx(0x08, [N], outOfRange), { classes: 10 })),
    ).toEqual(["1 labels are out of range (the first: 12); labels are integers in [0, 10)"]);
    const negative = new Int32Array(N).fill(1);
    negative[3] = -1;
    expect(
      refusal(() => importImages(images, npy("<i4", [N], new Uint8Array(negative.buffer))))[0],
    ).toMatch(/out of range \(the first: -1\)/);
    // Images of mixed size reach NumPy as an object array.
    expect(refusal(() => importImages(npy("|O", [N], new Uint8Array(0)), labels))[0]).toMatch(
      /Python objects \(images of mixed size\?\)/,
    );
    expect(refusal(() => importImages(images, idx(0x08, [N - 1], labelsOf.subarray(1))))).toEqual([
      `there are ${N} images and ${N - 1} labels`,
    ]);
    expect(refusal(() => importImages(idx(0x08, [N * 6], pixels), labels))[0]).toMatch(
      /images are \[count, …\]/,
    );
    expect(refusal(() => importImages(images, idx(0x08, [N], new Uint8Array(N).fill(2))))).toEqual([
      "every label is the same: a classifier needs two classes",
    ]);
    const nan = new Float32Array(N * 6);
    nan[13] = Number.NaN;
    expect(
      refusal(() => importImages(npy("<f4", [N, 6], new Uint8Array(nan.buffer)), labels)),
    ).toEqual(["image 2 holds a value that is not finite"]);
    expect(
      refusal(() => importImages(npy("<f4", [N, 6], new Uint8Array(N * 24), true), labels))[0],
    ).toMatch(/Fortran order/);
    expect(
      refusal(() => importImages(npy("<c8", [N, 6], new Uint8Array(N * 48)), labels))[0],
    ).toMatch(/dtype <c8/);
  });
});

describe("importing a text", () => {
  const poem =
    "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n".repeat(
      20,
    );

  it("makes a character vocabulary from UTF-8 text, 90% to train", () => {
    const shard = decodeShard(importText(new TextEncoder().encode(poem)), "poem");
    expect(describeShard(shard)).toEqual({
      kind: "text",
      train: Math.floor(poem.length * 0.9),
      validation: poem.length - Math.floor(poem.length * 0.9),
      vocabulary: new Set(poem).size,
    });
  });

  it("takes any bytes with a byte vocabulary, where the characters would not fit", () => {
    const wide = Array.from({ length: 1200 }, (_, i) => String.fromCodePoint(0x4e00 + i)).join("");
    expect(refusal(() => importText(new TextEncoder().encode(wide)))).toEqual([
      "the text has 1200 distinct characters; a character vocabulary holds 256 (a byte vocabulary holds any text)",
    ]);
    const bytes = new TextEncoder().encode(wide);
    const shard = decodeShard(importText(bytes, "byte"), "wide");
    if (shard.kind !== "text") throw new Error("text");
    expect(shard.corpus.train.length + shard.corpus.validation.length).toBe(bytes.length);
    // Tokens stand for the bytes themselves.
    expect(shard.corpus.vocabulary[shard.corpus.train[0]!]).toBe(String.fromCharCode(bytes[0]!));
  });

  it("refuses what is not a usable text", () => {
    expect(refusal(() => importText(Uint8Array.of(0xff, 0xfe, 0x41)))).toEqual([
      "the file is not UTF-8 text (a byte vocabulary takes any bytes: --vocabulary byte)",
    ]);
    expect(refusal(() => importText(new TextEncoder().encode("too short")))).toEqual([
      "the text has 9 characters; a dataset needs 1000",
    ]);
    expect(refusal(() => importText(idx(0x08, [N], labelsOf)))[0]).toMatch(
      /an IDX file, not text \(use --kind images/,
    );
    expect(refusal(() => importText(Uint8Array.of(0x1f, 0x8b, 8, 0)))[0]).toMatch(/gzip/);
  });
});
