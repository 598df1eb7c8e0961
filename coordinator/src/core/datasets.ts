// The datasets a run can name. Each is split into training samples (leased in batches) and a
// fixed held-out set the coordinator evaluates on. The synthetic blobs are built here; MNIST is
// handed in by the runtime (DatasetSources), because each gets its bytes its own way: Node from
// the `mnist` package, the edge from a static asset, so that the core bundles no 41 MB of JSON.
import { type Dataset, type ModelSpec, denseLayers, syntheticBlobs } from "@pangea/shared";
import { RunConfigError } from "./run-config.ts";

export interface DatasetSplit {
  train: Dataset;
  test: Dataset;
}

/** Named datasets the runtime provides; each is called when a run needs it, and caches. */
export type DatasetSources = Readonly<Record<string, () => DatasetSplit>>;

const blobs = new Map<string, DatasetSplit>();

/**
 * The named dataset, shaped for `model` (synthetic blobs take the model's input and class
 * counts). Throws RunConfigError when the dataset is unknown here, cannot be loaded, or does
 * not fit the model.
 */
export function loadDataset(name: string, model: ModelSpec, sources: DatasetSources): DatasetSplit {
  const layers = denseLayers(model);
  const width = model.inputShape.reduce((a, b) => a * b, 1);
  const classes = layers.at(-1)?.outputs ?? 0;
  if (name === "blobs") return syntheticSplit(width, classes, model.seed);
  const source = Object.hasOwn(sources, name) ? sources[name] : undefined;
  if (!source) throw new RunConfigError([`dataset: ${name} is not available on this coordinator`]);
  let split: DatasetSplit;
  try {
    split = source();
  } catch (e) {
    throw new RunConfigError([`dataset: ${name} could not be loaded (${(e as Error).message})`]);
  }
  const dataWidth = split.train.inputShape.reduce((a, b) => a * b, 1);
  if (dataWidth !== width || split.train.classes !== classes)
    throw new RunConfigError([
      `model: ${name} has ${dataWidth} inputs and ${split.train.classes} classes; the model has ${width} and ${classes}`,
    ]);
  return split;
}

function syntheticSplit(width: number, classes: number, seed: number): DatasetSplit {
  const key = `${width}:${classes}:${seed}`;
  let split = blobs.get(key);
  if (split) return split;
  const all = syntheticBlobs({ count: 2400, width, classes, seed: seed + 7 });
  const cut = 2000;
  const part = (from: number, to: number): Dataset => ({
    ...all,
    count: to - from,
    inputs: all.inputs.subarray(from * width, to * width),
    labels: all.labels.subarray(from, to),
  });
  split = { train: part(0, cut), test: part(cut, all.count) };
  blobs.set(key, split);
  return split;
}
