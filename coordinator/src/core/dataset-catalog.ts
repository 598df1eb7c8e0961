// The datasets a coordinator offers: the built-in ones and those researchers bring. A brought
// dataset arrives as a file (a text, or an image set as IDX or .npy files), is made into a shard
// (shared/src/data/import.ts) and checked whole before anything is stored; the runtime's storage
// (the data directory on Node, R2 on the edge) keeps the shard and its record together, so a
// refused or interrupted upload leaves nothing behind. The routes here are the same on both.
import {
  DATASET_NAME,
  DatasetImportError,
  type DatasetInfo,
  decodeShard,
  describeShard,
  importImages,
  importText,
  sha256Hex,
} from "@pangea/shared";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { DatasetSources } from "./datasets.ts";
import { isAdmin, UNAUTHORIZED } from "./surface.ts";

/** A dataset as listed: what it holds, how big it is, and the hash contributors check. */
export interface DatasetRecord extends DatasetInfo {
  name: string;
  /** The shard's size in bytes. */
  bytes: number;
  sha256: string;
  builtIn: boolean;
  /** Brought datasets: when, and the vocabulary's kind for text. */
  createdAt?: number;
  vocabularyKind?: "char" | "byte";
}

/** Where brought datasets live. */
export interface DatasetStorage {
  list(): Promise<DatasetRecord[]>;
  get(name: string): Promise<Uint8Array | undefined>;
  /** Stores the shard and its record together: after a crash, both are there or neither. */
  put(record: DatasetRecord, shard: Uint8Array): Promise<void>;
}

/** The largest file a dataset may come from unless the operator says otherwise (64 MiB). */
export const DEFAULT_DATASET_MAX_BYTES = 64 << 20;

/** Names a brought dataset may not take: the built-in ones, and the synthetic blobs. */
const RESERVED = new Set(["blobs"]);

export interface DatasetUpload {
  name: string;
  kind: "text" | "images";
  vocabulary?: "char" | "byte";
  classes?: number;
  /** text: `file`; images: `images` and `labels`. */
  files: Record<string, Uint8Array>;
}

/**
 * A brought dataset's shard and record, or a DatasetImportError with one sentence per problem
 * (the name, the files, their contents).
 */
export function buildDataset(
  upload: DatasetUpload,
  taken: ReadonlySet<string>,
  now: number,
): { record: DatasetRecord; shard: Uint8Array } {
  const problems: string[] = [];
  if (!DATASET_NAME.test(upload.name))
    problems.push(
      `name: ${JSON.stringify(upload.name)} must be 1 to 40 lowercase letters, digits, - or _`,
    );
  else if (taken.has(upload.name) || RESERVED.has(upload.name))
    problems.push(`name: a dataset called ${upload.name} exists`);
  const need = upload.kind === "text" ? ["file"] : ["images", "labels"];
  for (const part of need) if (!upload.files[part]) problems.push(`${part}: no file`);
  if (upload.kind !== "text" && upload.kind !== "images")
    problems.push(`kind: ${JSON.stringify(upload.kind)} is text or images`);
  if (problems.length > 0) throw new DatasetImportError(problems);
  const vocabulary = upload.vocabulary ?? "char";
  const shard =
    upload.kind === "text"
      ? importText(upload.files.file!, vocabulary)
      : importImages(upload.files.images!, upload.files.labels!, { classes: upload.classes });
  return {
    record: {
      ...describeShard(decodeShard(shard, upload.name)),
      name: upload.name,
      bytes: shard.byteLength,
      sha256: sha256Hex(shard),
      builtIn: false,
      createdAt: now,
      ...(upload.kind === "text" ? { vocabularyKind: vocabulary } : {}),
    },
    shard,
  };
}

/** The record of a built-in dataset, from its shard. */
export function builtInRecord(name: string, shard: Uint8Array): DatasetRecord {
  return {
    ...describeShard(decodeShard(shard, name)),
    name,
    bytes: shard.byteLength,
    sha256: sha256Hex(shard),
    builtIn: true,
  };
}

export interface DatasetApiOptions {
  adminToken: string;
  storage: DatasetStorage;
  /** The built-in datasets (loaded when first listed). */
  builtIn: () => Promise<DatasetSources>;
  /** The largest file a dataset may come from (PANGEA_DATASET_MAX_BYTES). */
  maxBytes?: number;
  /** Told of each dataset stored (Node: its coordinator can then run on it). */
  added?: (record: DatasetRecord, shard: Uint8Array) => void;
  now?: () => number;
}

/**
 * `GET /api/datasets`: every dataset; `POST /api/datasets` (admin): a dataset from a multipart
 * form (`name`, `kind`, `vocabulary` or `classes`, and `file`, or `images` and `labels`).
 */
export function datasetApi(options: DatasetApiOptions) {
  const api = new Hono();
  const maxBytes = options.maxBytes ?? DEFAULT_DATASET_MAX_BYTES;
  const builtIns = new Map<string, DatasetRecord>();

  const list = async (): Promise<DatasetRecord[]> => {
    const sources = await options.builtIn();
    for (const [name, source] of Object.entries(sources))
      if (!builtIns.has(name)) {
        try {
          builtIns.set(name, builtInRecord(name, source()));
        } catch {
          // A built-in that cannot load here is not offered; creating a run on it says why.
        }
      }
    return [...builtIns.values(), ...(await options.storage.list())];
  };

  api.get("/api/datasets", async (c) => c.json({ datasets: await list() }));

  api.post(
    "/api/datasets",
    async (c, next) => {
      if (!isAdmin(c.req.header("authorization"), options.adminToken))
        return c.json(UNAUTHORIZED, 401);
      await next();
    },
    // Two files (images and labels) and the form's fields.
    bodyLimit({
      maxSize: 2 * maxBytes + (64 << 10),
      onError: (c) => c.json(tooLarge(maxBytes), 413),
    }),
    async (c) => {
      let form: Record<string, string | File | (string | File)[]>;
      try {
        form = await c.req.parseBody();
      } catch {
        return c.json({ error: "invalid", problems: ["the body must be a multipart form"] }, 400);
      }
      const text = (key: string) => (typeof form[key] === "string" ? (form[key] as string) : "");
      const files: Record<string, Uint8Array> = {};
      for (const key of ["file", "images", "labels"]) {
        const f = form[key];
        if (f instanceof File) {
          if (f.size > maxBytes) return c.json(tooLarge(maxBytes, `${key} (${f.name})`), 413);
          files[key] = new Uint8Array(await f.arrayBuffer());
        }
      }
      const classes = text("classes");
      const vocabulary = text("vocabulary");
      const problems: string[] = [];
      if (classes !== "" && !/^\d+$/.test(classes)) problems.push(`classes: ${classes}`);
      if (vocabulary !== "" && vocabulary !== "char" && vocabulary !== "byte")
        problems.push(`vocabulary: ${JSON.stringify(vocabulary)} is char or byte`);
      if (problems.length > 0) return c.json({ error: "invalid", problems }, 400);
      try {
        const taken = new Set((await list()).map((d) => d.name));
        const { record, shard } = buildDataset(
          {
            name: text("name"),
            kind: (text("kind") || "text") as "text" | "images",
            vocabulary: (vocabulary || undefined) as "char" | "byte" | undefined,
            classes: classes === "" ? undefined : Number(classes),
            files,
          },
          taken,
          options.now?.() ?? Date.now(),
        );
        await options.storage.put(record, shard);
        options.added?.(record, shard);
        return c.json(record, 201);
      } catch (e) {
        if (e instanceof DatasetImportError)
          return c.json({ error: "invalid", problems: e.problems }, 400);
        throw e;
      }
    },
  );
  return api;
}

const tooLarge = (maxBytes: number, what = "the upload") => ({
  error: "too large",
  problems: [
    `${what} is over this coordinator's limit of ${maxBytes} bytes per file (PANGEA_DATASET_MAX_BYTES)`,
  ],
});

/** Brought datasets in memory (tests, and a coordinator without a data directory). */
export class MemoryDatasetStorage implements DatasetStorage {
  private readonly stored = new Map<string, { record: DatasetRecord; shard: Uint8Array }>();
  async list() {
    return [...this.stored.values()].map((s) => s.record);
  }
  async get(name: string) {
    return this.stored.get(name)?.shard;
  }
  async put(record: DatasetRecord, shard: Uint8Array) {
    this.stored.set(record.name, { record, shard });
  }
}
