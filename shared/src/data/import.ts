// Datasets people bring, turned into shards (shard.ts) the coordinator and every contributor
// read: a text file (a character or a byte vocabulary) or an image-classification set (IDX files
// as MNIST ships them, or a .npy pair of images and labels). Everything here is checked before a
// byte of shard is written: a file that is truncated, has the wrong magic, holds labels out of
// range or images of mixed size is refused with one sentence per problem, so nothing half-made
// is ever stored.
import { seededRandom } from "../random.ts";
import type { DatasetShard } from "./shard.ts";
import { encodeCodedImageShard, encodeImageShard } from "./image-shard.ts";
import { encodeTextShard, TRAIN_FRACTION } from "./text-shard.ts";

/** Why a file could not be made into a dataset: one sentence per problem. */
export class DatasetImportError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("; "));
  }
}

/** What a dataset's listing says about it (built in or brought). */
export interface DatasetInfo {
  kind: "text" | "images";
  /** Training samples: characters (text) or images. */
  train: number;
  /** Held-out samples: validation characters (text) or test images. */
  validation: number;
  /** Text: the vocabulary's size. */
  vocabulary?: number;
  /** Images: classes, and values per image. */
  classes?: number;
  width?: number;
}

export function describeShard(shard: DatasetShard): DatasetInfo {
  if (shard.kind === "text")
    return {
      kind: "text",
      train: shard.corpus.train.length,
      validation: shard.corpus.validation.length,
      vocabulary: shard.corpus.vocabulary.length,
    };
  return {
    kind: "images",
    train: shard.train.count,
    validation: shard.test.count,
    classes: shard.train.classes,
    width: shard.train.inputShape.reduce((a, b) => a * b, 1),
  };
}

/** The fewest characters a text dataset may have: its validation tenth must hold some windows. */
export const MIN_TEXT_CHARACTERS = 1000;
/** Held-out images at most: the coordinator evaluates on all of them. */
export const MAX_TEST_IMAGES = 1000;

/** A dataset name: what the API, the CLI and the create-run form call it. */
export const DATASET_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;

/** What a file's first bytes say it is, when it is a format we know (to explain refusals). */
function formatOf(bytes: Uint8Array): string | undefined {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return "gzip";
  if (bytes[0] === 0x93 && String.fromCharCode(...bytes.subarray(1, 6)) === "NUMPY") return "npy";
  if (bytes[0] === 0 && bytes[1] === 0 && bytes.length >= 4 && bytes[3]! >= 1 && bytes[3]! <= 4)
    return "idx";
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return "zip";
  return undefined;
}

const GZIP = "is gzip-compressed: decompress it first (gunzip; the CLI and the dashboard do)";

/**
 * A text file as a text shard. `char`: the vocabulary is the distinct characters of the UTF-8
 * text (at most 256, as nanoGPT's shakespeare_char); `byte`: the tokens are the file's bytes
 * (any file; the vocabulary is the distinct byte values).
 */
export function importText(file: Uint8Array, vocabulary: "char" | "byte" = "char"): Uint8Array {
  const format = formatOf(file);
  if (format === "gzip") throw new DatasetImportError([`the file ${GZIP}`]);
  if (format === "npy" || format === "idx" || format === "zip")
    throw new DatasetImportError([
      `the file is ${format === "idx" ? "an IDX" : format === "npy" ? "a NumPy" : "a zip"} file, not text (use --kind images for an image set)`,
    ]);
  let text: string;
  if (vocabulary === "byte") {
    // One character per byte (code points 0–255), built in slices: no decoder remaps them.
    const parts: string[] = [];
    for (let i = 0; i < file.length; i += 8192)
      parts.push(String.fromCharCode(...file.subarray(i, i + 8192)));
    text = parts.join("");
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(file);
    } catch {
      throw new DatasetImportError([
        "the file is not UTF-8 text (a byte vocabulary takes any bytes: --vocabulary byte)",
      ]);
    }
  }
  const problems: string[] = [];
  if (text.length < MIN_TEXT_CHARACTERS)
    problems.push(`the text has ${text.length} characters; a dataset needs ${MIN_TEXT_CHARACTERS}`);
  if (vocabulary === "char") {
    const distinct = new Set(text);
    if (distinct.size > 256)
      problems.push(
        `the text has ${distinct.size} distinct characters; a character vocabulary holds 256 (a byte vocabulary holds any text)`,
      );
    if ([...distinct].some((c) => c.length !== 1))
      problems.push(
        "the text has characters outside the basic multilingual plane (emoji?); a byte vocabulary takes them",
      );
  }
  if (problems.length > 0) throw new DatasetImportError(problems);
  return encodeTextShard(text);
}

/** An n-dimensional array read from an IDX or .npy file. */
interface NdArray {
  shape: number[];
  /** uint8 values, or float values (float32/float64 files), or integers (labels). */
  values: Uint8Array | Float32Array | Float64Array;
  dtype: "uint8" | "float" | "int";
}

/**
 * An image-classification set from two files (IDX as MNIST ships them, or .npy): images of
 * shape [N, ...] (uint8 values are scaled to [0, 1], floats kept), labels of shape [N] in
 * [0, classes). The samples are shuffled with a fixed seed and the last tenth (at most 1,000)
 * is held out; `classes` defaults to the largest label + 1.
 */
export function importImages(
  imagesFile: Uint8Array,
  labelsFile: Uint8Array,
  options: { classes?: number } = {},
): Uint8Array {
  const images = readArray(imagesFile, "the images file");
  const labels = readArray(labelsFile, "the labels file");
  const problems: string[] = [];
  if (images.shape.length < 2)
    problems.push(
      `the images file holds an array of shape [${images.shape}]; images are [count, …] (for example [60000, 28, 28])`,
    );
  if (labels.shape.length !== 1)
    problems.push(`the labels file holds an array of shape [${labels.shape}]; labels are [count]`);
  if (problems.length > 0) throw new DatasetImportError(problems);
  const count = images.shape[0]!;
  const width = images.shape.slice(1).reduce((a, b) => a * b, 1);
  if (labels.shape[0] !== count)
    problems.push(`there are ${count} images and ${labels.shape[0]} labels`);
  if (count < 2) problems.push(`${count} images: a dataset needs at least 2`);
  if (width < 1) problems.push("the images have no values");
  if (labels.dtype === "float") problems.push("the labels are floats; they must be integers");
  let largest = -1;
  const distinct = new Set<number>();
  let bad = 0;
  let firstBad = 0;
  for (let i = 0; i < labels.values.length; i++) {
    const l = labels.values[i]!;
    if (!Number.isInteger(l) || l < 0 || l > 255 || (options.classes && l >= options.classes)) {
      if (bad++ === 0) firstBad = l;
    } else {
      largest = Math.max(largest, l);
      distinct.add(l);
    }
  }
  const classes = options.classes ?? largest + 1;
  if (bad > 0)
    problems.push(
      `${bad} labels are out of range (the first: ${firstBad}); labels are integers in [0, ${options.classes ?? 256})`,
    );
  if (options.classes !== undefined && !(options.classes >= 2 && options.classes <= 256))
    problems.push(`classes: ${options.classes}; between 2 and 256`);
  else if (bad === 0 && distinct.size < 2)
    problems.push("every label is the same: a classifier needs two classes");
  if (images.dtype === "int")
    problems.push("the images are integers wider than a byte; use uint8 or float32");
  if (images.dtype === "float") {
    const values = images.values;
    for (let i = 0; i < values.length; i++)
      if (!Number.isFinite(values[i]!)) {
        problems.push(`image ${Math.floor(i / width)} holds a value that is not finite`);
        break;
      }
  }
  if (problems.length > 0) throw new DatasetImportError(problems);

  // A fixed shuffle, so that a file sorted by class still holds every class in both splits.
  const order = Array.from({ length: count }, (_, i) => i);
  const next = seededRandom(0x5eed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const test = Math.min(MAX_TEST_IMAGES, Math.max(1, Math.round(count * (1 - TRAIN_FRACTION))));
  const trainCount = count - test;
  const shuffledLabels = Uint8Array.from(order, (i) => labels.values[i]!);
  if (images.values instanceof Uint8Array) {
    const source = images.values;
    const codes = new Uint8Array(count * width);
    for (let s = 0; s < count; s++)
      codes.set(source.subarray(order[s]! * width, (order[s]! + 1) * width), s * width);
    return encodeCodedImageShard({
      width,
      classes,
      trainCount,
      levels: Float32Array.from({ length: 256 }, (_, v) => v / 255),
      labels: shuffledLabels,
      codes,
    });
  }
  const source = images.values;
  const values = new Float32Array(count * width);
  for (let s = 0; s < count; s++)
    values.set(source.subarray(order[s]! * width, (order[s]! + 1) * width), s * width);
  const split = (from: number, to: number) => ({
    name: "images",
    inputShape: [width],
    classes,
    count: to - from,
    inputs: values.subarray(from * width, to * width),
    labels: Int32Array.from(shuffledLabels.subarray(from, to)),
  });
  return encodeImageShard(split(0, trainCount), split(trainCount, count));
}

/** An IDX or .npy file's array, or a DatasetImportError saying what is wrong with it. */
function readArray(file: Uint8Array, what: string): NdArray {
  const format = formatOf(file);
  if (format === "idx") return readIdx(file, what);
  if (format === "npy") return readNpy(file, what);
  if (format === "gzip") throw new DatasetImportError([`${what} ${GZIP}`]);
  throw new DatasetImportError([
    `${what} is neither an IDX file (MNIST's format) nor a NumPy .npy file (wrong magic)`,
  ]);
}

/** IDX's type byte: 0x08 uint8, 0x09 int8, 0x0b int16, 0x0c int32, 0x0d float32, 0x0e float64. */
const IDX_TYPES = new Map<number, { size: number; dtype: NdArray["dtype"] }>([
  [0x08, { size: 1, dtype: "uint8" }],
  [0x09, { size: 1, dtype: "int" }],
  [0x0b, { size: 2, dtype: "int" }],
  [0x0c, { size: 4, dtype: "int" }],
  [0x0d, { size: 4, dtype: "float" }],
  [0x0e, { size: 8, dtype: "float" }],
]);

/** IDX: two zero bytes, a type byte, the rank, then big-endian u32 dimensions and the values. */
function readIdx(file: Uint8Array, what: string): NdArray {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const type = IDX_TYPES.get(file[2]!);
  if (!type)
    throw new DatasetImportError([`${what}: IDX type 0x${file[2]!.toString(16)} is unknown`]);
  const rank = file[3]!;
  const dataAt = 4 + rank * 4;
  if (file.byteLength < dataAt)
    throw new DatasetImportError([`${what} is truncated inside its header`]);
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(4 + i * 4, false));
  return {
    shape,
    dtype: type.dtype,
    values: readValues(file, dataAt, shape, type.size, type.dtype, false, what),
  };
}

/** The .npy dtypes we read: byte order, then kind and size, as NumPy writes `descr`. */
const NPY_DTYPE = /^([<>|=])([uif])(\d)$/;

/** NumPy's .npy: magic, version, a header length, a Python-literal header dict, then the data. */
function readNpy(file: Uint8Array, what: string): NdArray {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const major = file[6];
  const lengthBytes = major === 1 ? 2 : 4;
  if (major !== 1 && major !== 2 && major !== 3)
    throw new DatasetImportError([`${what}: .npy version ${major} is unknown`]);
  if (file.byteLength < 8 + lengthBytes)
    throw new DatasetImportError([`${what} is truncated inside its header`]);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataAt = 8 + lengthBytes + headerLength;
  if (file.byteLength < dataAt)
    throw new DatasetImportError([`${what} is truncated inside its header`]);
  const header = new TextDecoder().decode(file.subarray(8 + lengthBytes, dataAt));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new DatasetImportError([`${what}: its .npy header is not one NumPy writes`]);
  if (descr === "|O")
    throw new DatasetImportError([
      `${what} holds Python objects (images of mixed size?): stack them into one array of one shape`,
    ]);
  const dtype = NPY_DTYPE.exec(descr);
  if (!dtype || !(dtype[2] === "f" ? "48" : "1248").includes(dtype[3]!))
    throw new DatasetImportError([
      `${what} has dtype ${descr}; Pangea reads unsigned and signed integers and float32/float64`,
    ]);
  const shape = shapeText
    .split(",")
    .map((d) => d.trim())
    .filter((d) => d !== "")
    .map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new DatasetImportError([`${what}: shape (${shapeText}) is not a shape`]);
  if (fortran === "True" && shape.length > 1)
    throw new DatasetImportError([
      `${what} is in Fortran order; save it C-ordered (numpy.ascontiguousarray)`,
    ]);
  const size = Number(dtype[3]);
  const kind = dtype[2] === "f" ? "float" : dtype[2] === "u" && size === 1 ? "uint8" : "int";
  return {
    shape,
    dtype: kind,
    values: readValues(file, dataAt, shape, size, kind, dtype[1] !== ">", what, dtype[2] === "u"),
  };
}

/** The values after a header, checked against the length the shape promises. */
function readValues(
  file: Uint8Array,
  at: number,
  shape: number[],
  size: number,
  dtype: NdArray["dtype"],
  littleEndian: boolean,
  what: string,
  unsigned = false,
): NdArray["values"] {
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = at + count * size;
  if (file.byteLength < expected)
    throw new DatasetImportError([
      `${what} is truncated: its header promises ${expected} bytes, the file has ${file.byteLength}`,
    ]);
  if (file.byteLength > expected)
    throw new DatasetImportError([
      `${what} has ${file.byteLength - expected} bytes after the ${count} values its header promises`,
    ]);
  if (dtype === "uint8") return file.subarray(at, expected);
  const view = new DataView(file.buffer, file.byteOffset + at, count * size);
  const out = dtype === "float" && size === 4 ? new Float32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const o = i * size;
    out[i] =
      dtype === "float"
        ? size === 4
          ? view.getFloat32(o, littleEndian)
          : view.getFloat64(o, littleEndian)
        : size === 1
          ? unsigned
            ? view.getUint8(o)
            : view.getInt8(o)
          : size === 2
            ? unsigned
              ? view.getUint16(o, littleEndian)
              : view.getInt16(o, littleEndian)
            : size === 4
              ? unsigned
                ? view.getUint32(o, littleEndian)
                : view.getInt32(o, littleEndian)
              : Number(
                  unsigned ? view.getBigUint64(o, littleEndian) : view.getBigInt64(o, littleEndian),
                );
  }
  return out;
}
