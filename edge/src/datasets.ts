// The datasets a run object can train on, as shards from the built web UI's static assets
// (MNIST 7.9 MB, Tiny Shakespeare 1.1 MB; written by client-web/scripts/datasets.ts), fetched
// once per isolate and shared by every run object in it: the Worker's script carries no dataset.
// Brought datasets live in R2, each read by the run objects that train on it.
import type { DatasetRecord, DatasetSources, DatasetStorage } from "@pangea/coordinator/core";
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

/**
 * The largest file a brought dataset may come from on the edge unless PANGEA_DATASET_MAX_BYTES
 * says otherwise (16 MiB, against Node's 64): the Worker holds the upload and the shard it
 * makes in one isolate's 128 MB, and a run object holds its shard beside its run's 48 MB.
 */
export const EDGE_DATASET_MAX_BYTES = 16 << 20;

/** Where a brought dataset lives in the bucket: one object, the shard, with its record. */
const KEY_PREFIX = "datasets/";
/** Brought shards this isolate has read, by name (a name is never reused: uploads refuse it). */
const brought = new Map<string, Promise<Uint8Array | undefined>>();

/**
 * Brought datasets in R2 (the DATASETS binding): each is one object, the shard's bytes with its
 * record as custom metadata. One put stores both or neither, so an upload that fails or is cut
 * off leaves nothing behind, and a listing never sees a shard without its record.
 */
export class R2Datasets implements DatasetStorage {
  constructor(private readonly bucket: R2Bucket) {}

  async list(): Promise<DatasetRecord[]> {
    const records: DatasetRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({
        prefix: KEY_PREFIX,
        cursor,
        include: ["customMetadata"],
      });
      for (const object of page.objects) {
        const record = readRecord(object);
        if (record) records.push(record);
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return records.sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0));
  }

  get(name: string): Promise<Uint8Array | undefined> {
    let bytes = brought.get(name);
    if (!bytes) {
      bytes = (async () => {
        const object = await this.bucket.get(KEY_PREFIX + name);
        return object && readRecord(object)
          ? new Uint8Array(await object.arrayBuffer())
          : undefined;
      })();
      // A dataset not there yet (or a failed read) is asked for again next time.
      bytes.then(
        (b) => b || brought.delete(name),
        () => brought.delete(name),
      );
      brought.set(name, bytes);
    }
    return bytes;
  }

  async put(record: DatasetRecord, shard: Uint8Array): Promise<void> {
    await this.bucket.put(KEY_PREFIX + record.name, shard, {
      customMetadata: { record: JSON.stringify(record) },
      sha256: record.sha256,
    });
  }
}

function readRecord(object: R2Object): DatasetRecord | undefined {
  try {
    const record = JSON.parse(object.customMetadata?.record ?? "null") as DatasetRecord | null;
    return record && KEY_PREFIX + record.name === object.key ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The brought datasets among `names`, from R2, as the core's sources (a run object holds only
 * those its run trains on). Names that are built in, or not in the bucket, are left out: the
 * core then refuses a run that names one as an unknown dataset.
 */
export async function broughtDatasets(
  bucket: R2Bucket | undefined,
  names: Iterable<string>,
): Promise<Record<string, () => Uint8Array>> {
  const sources: Record<string, () => Uint8Array> = {};
  if (!bucket) return sources;
  const storage = new R2Datasets(bucket);
  for (const name of new Set(names)) {
    if (name in PATHS || name === "blobs") continue;
    const shard = await storage.get(name);
    if (shard) sources[name] = () => shard;
  }
  return sources;
}

/** The dataset a create-run request names (a JSON config, or a form's `config` field). */
export async function datasetNamed(request: Request): Promise<string | undefined> {
  try {
    const form = request.headers.get("content-type")?.startsWith("multipart/form-data");
    const config = form ? (await request.formData()).get("config") : await request.text();
    const name = typeof config === "string" ? JSON.parse(config)?.dataset : undefined;
    return typeof name === "string" ? name : undefined;
  } catch {
    return undefined;
  }
}
