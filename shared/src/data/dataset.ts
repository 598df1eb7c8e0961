// A labelled dataset in flat typed arrays: sample i is inputs[i*width .. (i+1)*width).
export interface Dataset {
  name: string;
  /** Shape of one sample, e.g. [784]. */
  inputShape: number[];
  classes: number;
  count: number;
  /**
   * The samples' values, or, with `levels`, one byte per value that indexes `levels`: an image
   * set with few distinct grey levels (MNIST has at most 256) then takes a quarter of the memory,
   * which is what lets a coordinator hold MNIST well inside an edge isolate's 128 MB.
   */
  inputs: Float32Array | Uint8Array;
  /** The value each byte of `inputs` stands for, when `inputs` holds codes. */
  levels?: Float32Array;
  labels: Int32Array;
}

/** The values of samples [start, start + n), as floats (a view where they are stored as floats). */
export function sampleValues(data: Dataset, start: number, n: number): Float32Array {
  const width = data.inputShape.reduce((a, b) => a * b, 1);
  const stored = data.inputs.subarray(start * width, (start + n) * width);
  if (stored instanceof Float32Array) return stored;
  return decodeLevels(stored, levelsOf(data), new Float32Array(stored.length), 0);
}

/** Samples `indices` of a dataset, copied into one contiguous batch. */
export function gatherBatch(
  data: Dataset,
  indices: ArrayLike<number>,
): { inputs: Float32Array; labels: Int32Array } {
  const width = data.inputShape.reduce((a, b) => a * b, 1);
  const inputs = new Float32Array(indices.length * width);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    const stored = data.inputs.subarray(j * width, (j + 1) * width);
    if (stored instanceof Float32Array) inputs.set(stored, i * width);
    else decodeLevels(stored, levelsOf(data), inputs, i * width);
    labels[i] = data.labels[j]!;
  }
  return { inputs, labels };
}

function levelsOf(data: Dataset): Float32Array {
  if (!data.levels) throw new Error(`dataset ${data.name} stores byte codes but has no levels`);
  return data.levels;
}

function decodeLevels(
  codes: Uint8Array,
  levels: Float32Array,
  out: Float32Array,
  at: number,
): Float32Array {
  for (let p = 0; p < codes.length; p++) out[at + p] = levels[codes[p]!]!;
  return out;
}
