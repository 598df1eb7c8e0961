// The datasets a run object can train on, as shards from the built web UI's static assets
// (MNIST 7.9 MB, Tiny Shakespeare 1.1 MB; written by client-web/scripts/datasets.ts), fetched
// once per isolate and shared by every run object in it: the Worker's script carries no dataset.
import type { DatasetSources } from "@pangea/coordinator/core";
import { MNIST_SHARD_PATH } from "@pangea/shared/image-shard";
import { SHAKESPEARE_SHARD_PATH } from "@pangea/shared/text-shard";

const PATHS: Record<string, string> = {
  mnist: MNIST_SHARD_PATH,
  shakespeare: SHAKESPEARE_SHARD_PATH,
};
const loaded = new Map<string, Promise<Uint8Array>>();

/** Fetches a shard (once per isolate; again after a failure). */
function fetchShard(assets: Fetcher, path: string): Promise<Uint8Array> {
  let bytes = loaded.get(path);
  if (!bytes) {
    bytes = (async () => {
      const response = await assets.fetch(`https://assets${path}`);
      if (!response.ok) throw new Error(`${path}: ${response.status} (is the web UI built?)`);
      return new Uint8Array(await response.arrayBuffer());
    })();
    bytes.catch(() => loaded.delete(path));
    loaded.set(path, bytes);
  }
  return bytes;
}

/**
 * The core's dataset sources, loaded ahead: the core loads synchronously, so the object awaits
 * this before building its coordinator. A dataset that failed to load refuses runs that name it,
 * with the reason, and changes nothing else.
 */
export async function edgeDatasets(assets: Fetcher | undefined): Promise<DatasetSources> {
  const sources: Record<string, () => Uint8Array> = {};
  for (const [name, path] of Object.entries(PATHS)) {
    let shard: Uint8Array | Error;
    try {
      if (!assets) throw new Error("no ASSETS binding");
      shard = await fetchShard(assets, path);
    } catch (e) {
      shard = e instanceof Error ? e : new Error(String(e));
    }
    sources[name] = () => {
      if (shard instanceof Error) throw shard;
      return shard;
    };
  }
  return sources;
}
