// The datasets a run object can train on. MNIST comes from the built web UI's static assets as
// one compact shard (7.9 MB; see shared/src/data/mnist-shard.ts), fetched once per isolate and
// shared by every run object in it: the Worker's script carries no dataset, and an isolate
// holds MNIST in about 11 MB (byte-coded training images, float held-out ones).
import type { DatasetSources } from "@pangea/coordinator/core";
import { decodeMnistShard, MNIST_SHARD_PATH, type MnistSplit } from "@pangea/shared/mnist-shard";

let mnist: Promise<MnistSplit> | undefined;

/** Fetches and decodes the shard (once per isolate; again after a failure). */
function loadMnist(assets: Fetcher): Promise<MnistSplit> {
  mnist ??= (async () => {
    const response = await assets.fetch(`https://assets${MNIST_SHARD_PATH}`);
    if (!response.ok)
      throw new Error(`${MNIST_SHARD_PATH}: ${response.status} (is the web UI built?)`);
    return decodeMnistShard(new Uint8Array(await response.arrayBuffer()));
  })().catch((e: unknown) => {
    mnist = undefined;
    throw e;
  });
  return mnist;
}

/**
 * The core's dataset sources, loaded ahead: the core loads synchronously, so the object awaits
 * this before building its coordinator. A dataset that failed to load refuses runs that name it,
 * with the reason, and changes nothing else.
 */
export async function edgeDatasets(assets: Fetcher | undefined): Promise<DatasetSources> {
  let split: MnistSplit | Error;
  try {
    if (!assets) throw new Error("no ASSETS binding");
    split = await loadMnist(assets);
  } catch (e) {
    split = e instanceof Error ? e : new Error(String(e));
  }
  return {
    mnist: () => {
      if (split instanceof Error) throw split;
      return split;
    },
  };
}
