// Brought datasets on Node: each is two files in <data dir>/datasets, the shard (<name>.bin) and
// its record (<name>.json). Each is written to a temporary name, flushed and renamed, the record
// last: a dataset exists once its record does, so a crash mid-upload leaves at most a stray
// temporary or shard file, which the next start removes.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { DatasetRecord, DatasetStorage } from "../core/dataset-catalog.ts";

export class DatasetFiles implements DatasetStorage {
  readonly dir: string;
  private readonly records = new Map<string, DatasetRecord>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, "datasets");
    mkdirSync(this.dir, { recursive: true });
    const files = readdirSync(this.dir);
    for (const file of files)
      if (file.endsWith(".json") && files.includes(file.replace(/\.json$/, ".bin")))
        this.readRecord(file.slice(0, -".json".length));
    // A temporary, a shard without its record, or a record without its shard: not stored.
    for (const file of files)
      if (!this.records.has(file.replace(/\.(bin|json)$/, "")) || file.endsWith(".tmp"))
        rmSync(join(this.dir, file), { force: true });
  }

  /** The stored datasets as the coordinator's sources, read from disk when a run needs one. */
  sources(): Record<string, () => Uint8Array> {
    return Object.fromEntries([...this.records.keys()].map((name) => [name, this.source(name)]));
  }

  source(name: string): () => Uint8Array {
    let bytes: Uint8Array | undefined;
    return () => {
      bytes ??= new Uint8Array(readFileSync(join(this.dir, `${name}.bin`)));
      return bytes;
    };
  }

  async list(): Promise<DatasetRecord[]> {
    return [...this.records.values()];
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    return this.records.has(name) ? this.source(name)() : undefined;
  }

  async put(record: DatasetRecord, shard: Uint8Array): Promise<void> {
    const bin = join(this.dir, `${record.name}.bin`);
    const json = join(this.dir, `${record.name}.json`);
    try {
      writeDurably(bin, shard);
      writeDurably(json, new TextEncoder().encode(`${JSON.stringify(record, null, 2)}\n`));
    } catch (e) {
      // A full disk or an I/O error: nothing of this dataset stays.
      for (const f of [bin, json, `${bin}.tmp`, `${json}.tmp`]) rmSync(f, { force: true });
      throw e;
    }
    this.records.set(record.name, record);
  }

  private readRecord(name: string): void {
    try {
      const record = JSON.parse(readFileSync(join(this.dir, `${name}.json`), "utf8"));
      if (record?.name === name) this.records.set(name, record);
    } catch {
      // Unreadable: removed with its shard.
    }
  }
}

/** Writes to a temporary name, flushes it to disk and renames it into place. */
function writeDurably(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  // The rename itself is durable once the directory is flushed.
  const dir = openSync(join(path, ".."), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
