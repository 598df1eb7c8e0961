// The datasets a run can name. Each is split into training samples (leased in batches) and a
// fixed held-out set the coordinator evaluates on.
import { type Dataset, type ModelSpec, denseLayers, syntheticBlobs } from "@pangea/shared";
import { loadMnist } from "@pangea/shared/mnist";

export interface DatasetSplit {
  train: Dataset;
  test: Dataset;
}

const cache = new Map<string, DatasetSplit>();

/** The named dataset, shaped for `model` (synthetic blobs take the model's input and class counts). */
export function loadDataset(name: string, model: ModelSpec): DatasetSplit {
  const layers = denseLayers(model);
  const width = model.inputShape.reduce((a, b) => a * b, 1);
  const classes = layers.at(-1)?.outputs ?? 0;
  const key = `${name}:${width}:${classes}:${model.seed}`;
  let split = cache.get(key);
  if (split) return split;
  if (name === "mnist") {
    if (width !== 784 || classes !== 10)
      throw new Error(`mnist has 784 inputs and 10 classes; the model has ${width} and ${classes}`);
    split = loadMnist();
  } else if (name === "blobs") {
    const all = syntheticBlobs({ count: 2400, width, classes, seed: model.seed + 7 });
    const cut = 2000;
    const part = (from: number, to: number): Dataset => ({
      ...all,
      count: to - from,
      inputs: all.inputs.subarray(from * width, to * width),
      labels: all.labels.subarray(from, to),
    });
    split = { train: part(0, cut), test: part(cut, all.count) };
  } else {
    throw new Error(`unknown dataset ${name}`);
  }
  cache.set(key, split);
  return split;
}
