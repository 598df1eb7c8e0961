// A labelled dataset in flat typed arrays: sample i is inputs[i*width .. (i+1)*width).
export interface Dataset {
  name: string;
  /** Shape of one sample, e.g. [784]. */
  inputShape: number[];
  classes: number;
  count: number;
  inputs: Float32Array;
  labels: Int32Array;
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
    inputs.set(data.inputs.subarray(j * width, (j + 1) * width), i * width);
    labels[i] = data.labels[j]!;
  }
  return { inputs, labels };
}
