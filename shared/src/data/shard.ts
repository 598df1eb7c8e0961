// A run's dataset as one shard of bytes, whatever its kind: the coordinator names batches in it
// by offsets, and every contributor builds the same batch from its own copy. Data moves once per
// contributor (fetched, checked against the hash in the welcome, cached), not with every lease.
import type { ModelSpec } from "../wire/messages.ts";
import { type Dataset, gatherBatch } from "./dataset.ts";
import { decodeImageShard, IMAGE_SHARD_MAGIC } from "./image-shard.ts";
import { decodeTextShard, TEXT_SHARD_MAGIC, type TextCorpus } from "./text-shard.ts";

export type DatasetShard =
  | { kind: "images"; train: Dataset; test: Dataset }
  | { kind: "text"; corpus: TextCorpus };

/** The shard's contents by its magic, or an error saying what is wrong with it. */
export function decodeShard(bytes: Uint8Array, name: string): DatasetShard {
  if (bytes.byteLength < 4) throw new Error(`dataset ${name}: ${bytes.byteLength} bytes`);
  const magic = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  if (magic === IMAGE_SHARD_MAGIC) return { kind: "images", ...decodeImageShard(bytes, name) };
  if (magic === TEXT_SHARD_MAGIC) return { kind: "text", corpus: decodeTextShard(bytes, name) };
  throw new Error(`dataset ${name}: not a dataset shard (unknown magic)`);
}

/** A batch's model inputs and targets: images and labels, or token windows and next tokens. */
export interface Batch {
  /** Float32 values for images; token ids for text ([n, contextLength]). */
  inputs: Float32Array | Int32Array;
  /** Class labels for images; the next token at every position for text. */
  labels: Int32Array;
  /** Samples (images) or windows (text). */
  count: number;
}

/**
 * The batch at `offsets`: the training images at those indices, or the text windows of the
 * model's context length starting at those tokens. Throws on an offset outside the training
 * split, so a bad lease fails loudly instead of training on garbage.
 */
export function batchAt(shard: DatasetShard, offsets: ArrayLike<number>, model: ModelSpec): Batch {
  if (shard.kind === "images") {
    for (let i = 0; i < offsets.length; i++)
      if (!(offsets[i]! < shard.train.count))
        throw new Error(`offset ${offsets[i]} is outside ${shard.train.count} training samples`);
    const { inputs, labels } = gatherBatch(shard.train, offsets);
    return { inputs, labels, count: offsets.length };
  }
  const T = model.transformer?.contextLength;
  if (!T) throw new Error("a text dataset needs a transformer model");
  const tokens = shard.corpus.train;
  const inputs = new Int32Array(offsets.length * T);
  const labels = new Int32Array(offsets.length * T);
  for (let b = 0; b < offsets.length; b++) {
    const start = offsets[b]!;
    if (!(start + T < tokens.length))
      throw new Error(`window at ${start} runs past ${tokens.length} training tokens`);
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = tokens[start + t]!;
      labels[b * T + t] = tokens[start + t + 1]!;
    }
  }
  return { inputs, labels, count: offsets.length };
}

/** The batch a lease carries by value, or builds from the shard by its offsets. */
export function leaseBatch(
  batch: {
    samples?: { data: ArrayLike<number> };
    labels?: { data: ArrayLike<number>; shape: number[] };
    offsets?: number[];
  },
  shard: DatasetShard | undefined,
  model: ModelSpec,
): Batch {
  if (batch.offsets && batch.offsets.length > 0) {
    if (!shard) throw new Error("the lease names its batch by offsets, but no dataset is loaded");
    return batchAt(shard, batch.offsets, model);
  }
  if (!batch.samples || !batch.labels) throw new Error("the lease carries no batch");
  return {
    inputs: batch.samples.data as Float32Array,
    labels: batch.labels.data as Int32Array,
    count: batch.labels.shape[0] ?? 0,
  };
}

/**
 * The part of a local-SGD lease's batch that inner step `step` of `steps` trains on: the lease
 * names a batch per step, in step order, so each step sees fresh samples (DiLoCo's inner loop).
 * A short last batch of an epoch is shared out evenly, wrapping around where it runs short.
 */
export function innerBatch(batch: Batch, step: number, steps: number): Batch {
  if (steps <= 1) return batch;
  const n = Math.max(1, Math.ceil(batch.count / steps));
  const width = batch.labels.length / batch.count; // label positions per sample (T for text)
  const size = batch.inputs.length / batch.count;
  const inputs = new (batch.inputs.constructor as Float32ArrayConstructor | Int32ArrayConstructor)(
    n * size,
  );
  const labels = new Int32Array(n * width);
  for (let k = 0; k < n; k++) {
    const i = (step * n + k) % batch.count;
    inputs.set(batch.inputs.subarray(i * size, (i + 1) * size), k * size);
    labels.set(batch.labels.subarray(i * width, (i + 1) * width), k * width);
  }
  return { inputs, labels, count: n };
}

/**
 * The seed of a batch's dropout masks at one local step: everyone given the batch draws the same
 * masks (so two copies of a batch can be compared), and each inner step draws new ones.
 */
export function dropoutSeedOf(batch: { epoch?: number; index?: number }, step = 0): number {
  const e = Math.imul(batch.epoch ?? 0, 0x9e3779b1);
  const i = Math.imul(batch.index ?? 0, 0x85ebca6b);
  return (e ^ i ^ Math.imul(step + 1, 0xc2b2ae35)) >>> 0;
}
