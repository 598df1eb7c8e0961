// The datasets a run can name. Each is one shard of bytes (shared/src/data/shard.ts): the
// coordinator decodes it for its own evaluation and serves the same bytes to contributors, who
// check them against the hash in the welcome and build every leased batch from the offsets the
// lease names. The synthetic blobs are built here; the others are handed in by the runtime
// (DatasetSources), because each gets its bytes its own way: Node from the `mnist` package and
// shared/data, the edge from static assets, so that the core bundles no 41 MB of JSON.
import {
  type DatasetShard,
  decodeShard,
  denseLayers,
  encodeImageShard,
  type ModelSpec,
  sha256Hex,
  syntheticBlobs,
} from "@pangea/shared";
import { RunConfigError } from "./run-config.ts";

/** Named datasets the runtime provides, as shard bytes; each is called when a run needs it. */
export type DatasetSources = Readonly<Record<string, () => Uint8Array>>;

/** A run's dataset: its shard's bytes and hash (what contributors fetch) and its contents. */
export interface RunData {
  name: string;
  bytes: Uint8Array;
  sha256: string;
  shard: DatasetShard;
  /** Training samples per epoch: images, or windows of the model's context for text. */
  trainCount: number;
}

/** Decoded shards by hash, shared by the runs that train on the same bytes. */
const decoded = new Map<string, RunData>();
/** Each shard's hash, once per array: hashing MNIST's 7.9 MB for every run loaded is ~0.1 s. */
const hashes = new WeakMap<Uint8Array, string>();
const blobs = new Map<string, Uint8Array>();

/**
 * The named dataset, checked against `model`. Throws RunConfigError when the dataset is unknown
 * here, cannot be loaded, or does not fit the model (one sentence per problem).
 */
export function loadDataset(name: string, model: ModelSpec, sources: DatasetSources): RunData {
  const bytes = name === "blobs" ? syntheticShard(model) : sourceBytes(name, sources);
  let sha256 = hashes.get(bytes);
  if (sha256 === undefined) {
    sha256 = sha256Hex(bytes);
    hashes.set(bytes, sha256);
  }
  let data = decoded.get(`${name}:${sha256}`);
  if (!data) {
    let shard: DatasetShard;
    try {
      shard = decodeShard(bytes, name);
    } catch (e) {
      throw new RunConfigError([`dataset: ${name} could not be read (${(e as Error).message})`]);
    }
    data = { name, bytes, sha256, shard, trainCount: 0 };
    decoded.set(`${name}:${sha256}`, data);
  }
  const problems = fit(data.shard, model, name);
  if (problems.length > 0) throw new RunConfigError(problems);
  const T = model.transformer?.contextLength ?? 1;
  const trainCount =
    data.shard.kind === "images"
      ? data.shard.train.count
      : Math.floor((data.shard.corpus.train.length - 1) / T);
  return { ...data, trainCount };
}

/**
 * Where sample `i` of an epoch starts in the shard: the image's index, or, for text, its
 * window's first token. Text windows tile the training split at the context's length, shifted
 * each epoch so that an epoch does not repeat the last one's windows exactly.
 */
export function sampleOffset(data: RunData, model: ModelSpec, i: number, epoch: number): number {
  if (data.shard.kind === "images") return i;
  const T = model.transformer!.contextLength;
  const shift = (epoch * 7919) % T;
  // The last window of an epoch keeps its T + 1 tokens inside the split.
  return Math.min(i * T + shift, data.shard.corpus.train.length - T - 1);
}

/** Whether this coordinator can load the named dataset (the blobs are built in). */
export function hasDataset(name: string, sources: DatasetSources): boolean {
  return name === "blobs" || Object.hasOwn(sources, name);
}

export const unavailable = (name: string) =>
  `dataset: ${name} is not available on this coordinator`;

function sourceBytes(name: string, sources: DatasetSources): Uint8Array {
  const source = Object.hasOwn(sources, name) ? sources[name] : undefined;
  if (!source) throw new RunConfigError([unavailable(name)]);
  try {
    return source();
  } catch (e) {
    throw new RunConfigError([`dataset: ${name} could not be loaded (${(e as Error).message})`]);
  }
}

function fit(shard: DatasetShard, model: ModelSpec, name: string): string[] {
  const tf = model.transformer;
  if (shard.kind === "text") {
    if (!tf) return [`model: ${name} is text; it needs a transformer model`];
    const size = shard.corpus.vocabulary.length;
    if (tf.vocabSize < size)
      return [`model: ${name} has ${size} characters; the model's vocabulary has ${tf.vocabSize}`];
    if (shard.corpus.validation.length <= tf.contextLength)
      return [`model: ${name}'s validation text is shorter than the context`];
    return [];
  }
  if (tf) return [`model: ${name} is an image set; a transformer needs a text dataset`];
  const width = model.inputShape.reduce((a, b) => a * b, 1);
  const classes = outputsOf(model);
  const dataWidth = shard.train.inputShape.reduce((a, b) => a * b, 1);
  if (dataWidth !== width || shard.train.classes !== classes)
    return [
      `model: ${name} has ${dataWidth} inputs and ${shard.train.classes} classes; the model has ${width} and ${classes}`,
    ];
  return [];
}

function outputsOf(model: ModelSpec): number {
  return denseLayers(model).at(-1)?.outputs ?? 0;
}

/** The synthetic blobs for the model's input and class counts, as an image shard. */
function syntheticShard(model: ModelSpec): Uint8Array {
  const width = model.inputShape.reduce((a, b) => a * b, 1);
  const classes = outputsOf(model);
  const key = `${width}:${classes}:${model.seed}`;
  let bytes = blobs.get(key);
  if (bytes) return bytes;
  const all = syntheticBlobs({
    count: 2400,
    width,
    classes: Math.max(1, classes),
    seed: model.seed + 7,
  });
  const cut = 2000;
  const part = (from: number, to: number) => ({
    ...all,
    count: to - from,
    inputs: all.inputs.subarray(from * width, to * width),
    labels: all.labels.subarray(from, to),
  });
  bytes = encodeImageShard(part(0, cut), part(cut, all.count));
  blobs.set(key, bytes);
  return bytes;
}
