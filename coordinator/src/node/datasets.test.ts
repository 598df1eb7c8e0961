// Datasets researchers bring, against the real Node server: uploads over HTTP (and by the CLI,
// gzipped IDX files as MNIST ships them), stored in the data directory, listed, trained on,
// kept across a restart; and every refusal leaves the data directory as it was.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { sha256Hex } from "@pangea/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { linesShard, linesText, tinyGpt } from "../testing/lines.ts";
import { startServer } from "./server.ts";

const TOKEN = "datasets-token";
let dir: string;
let server: Awaited<ReturnType<typeof startServer>>;
const start = () =>
  startServer({
    dataDir: dir,
    port: 0,
    hostname: "127.0.0.1",
    adminToken: TOKEN,
    demo: false,
    datasetMaxBytes: 64 << 10,
    log: () => {},
  });

// The lines corpus as the text file a researcher would have.
const text = linesText;

function upload(fields: Record<string, string | Uint8Array>, token = TOKEN) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields))
    if (typeof v === "string") form.set(k, v);
    else form.set(k, new Blob([v as Uint8Array<ArrayBuffer>]), `${k}.bin`);
  return fetch(`${server.url}/api/datasets`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
}

const stored = () => readdirSync(join(dir, "datasets")).sort();

/** An IDX file of uint8 values. */
function idx(shape: number[], values: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + shape.length * 4 + values.length);
  out[2] = 0x08;
  out[3] = shape.length;
  for (const [i, d] of shape.entries()) new DataView(out.buffer).setUint32(4 + i * 4, d, false);
  out.set(values, 4 + shape.length * 4);
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pangea-datasets-"));
  server = await start();
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("datasets people bring, on the Node server", () => {
  it("stores a text file as a shard, lists it beside the built-in ones, and trains a run on it", async () => {
    expect(
      (await upload({ name: "plays", kind: "text", file: new Uint8Array() }, "x")).status,
    ).toBe(401);
    const res = await upload({
      name: "plays",
      kind: "text",
      file: new TextEncoder().encode(text),
    });
    expect(res.status).toBe(201);
    const record = await res.json();
    // The same bytes as the shard the tests build from the same text.
    expect(record).toMatchObject({
      name: "plays",
      kind: "text",
      vocabulary: tinyGpt.transformer!.vocabSize,
      bytes: linesShard.byteLength,
      sha256: sha256Hex(linesShard),
      builtIn: false,
      vocabularyKind: "char",
    });
    expect(stored()).toEqual(["plays.bin", "plays.json"]);
    const { datasets } = (await (await fetch(`${server.url}/api/datasets`)).json()) as {
      datasets: { name: string; builtIn: boolean; kind: string }[];
    };
    expect(datasets.map((d) => [d.name, d.builtIn, d.kind])).toEqual([
      ["mnist", true, "images"],
      ["shakespeare", true, "text"],
      ["plays", false, "text"],
    ]);

    const created = await fetch(`${server.url}/api/runs`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "on plays", model: tinyGpt, dataset: "plays", batchSize: 4 }),
    });
    expect(created.status).toBe(201);
    const run = (await created.json()) as { id: string };
    // Contributors fetch the shard and check it against the hash the coordinator names.
    const shard = new Uint8Array(
      await (await fetch(`${server.url}/api/runs/${run.id}/shard`)).arrayBuffer(),
    );
    expect(sha256Hex(shard)).toBe(record.sha256);
  });

  it("refuses bad uploads with a clear message and stores nothing of them", async () => {
    const before = stored();
    const pixels = new Uint8Array(50 * 4).map((_, i) => i);
    const labels = new Uint8Array(50).map((_, i) => i % 5);
    const cases: [Record<string, string | Uint8Array>, number, RegExp][] = [
      [{ name: "plays", kind: "text", file: new TextEncoder().encode(text) }, 400, /exists/],
      [{ name: "Bad Name", kind: "text", file: new TextEncoder().encode(text) }, 400, /name/],
      [{ name: "short", kind: "text", file: new TextEncoder().encode("hi") }, 400, /1000/],
      [
        {
          name: "cut",
          kind: "images",
          images: idx([50, 4], pixels).subarray(0, 100),
          labels: idx([50], labels),
        },
        400,
        /truncated/,
      ],
      [
        { name: "magic", kind: "images", images: new Uint8Array(64), labels: idx([50], labels) },
        400,
        /wrong magic/,
      ],
      [
        {
          name: "range",
          kind: "images",
          classes: "4",
          images: idx([50, 4], pixels),
          labels: idx([50], labels),
        },
        400,
        /out of range/,
      ],
      [
        { name: "big", kind: "text", file: new Uint8Array(65 << 10).fill(97) },
        413,
        /limit of 65536 bytes/,
      ],
      [{ name: "nofile", kind: "images", images: idx([50, 4], pixels) }, 400, /labels: no file/],
    ];
    for (const [fields, status, message] of cases) {
      const res = await upload(fields);
      expect(res.status, JSON.stringify(Object.keys(fields))).toBe(status);
      expect(JSON.stringify(await res.json())).toMatch(message);
    }
    expect(stored()).toEqual(before);
  });

  it("takes gzipped IDX files from the CLI, and keeps every dataset across a restart", async () => {
    const pixels = new Uint8Array(60 * 4).map((_, i) => (i * 37) % 256);
    const labels = new Uint8Array(60).map((_, i) => i % 3);
    const images = join(dir, "tiny-images-idx3-ubyte.gz");
    const labelFile = join(dir, "tiny-labels-idx1-ubyte.gz");
    writeFileSync(images, gzipSync(idx([60, 2, 2], pixels)));
    writeFileSync(labelFile, gzipSync(idx([60], labels)));
    // Asynchronously: the server answering the CLI runs in this process.
    const cli = (...args: string[]) =>
      new Promise<{ stdout: string; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          ["--import", "tsx", join(import.meta.dirname, "cli.ts"), ...args],
          {
            encoding: "utf8",
            env: { ...process.env, PANGEA_URL: server.url, PANGEA_ADMIN_TOKEN: TOKEN },
          },
          (_, stdout, stderr) => resolve({ stdout, stderr }),
        ),
      );
    const added = await cli("datasets", "add", images, labelFile, "--name", "tiny");
    expect(added.stderr).toBe("");
    expect(added.stdout).toMatch(/^tiny +images, 54 \/ 6, 4 values, 3 classes/);
    const listed = await cli("datasets", "list");
    expect(
      listed.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ")[0]),
    ).toEqual(["mnist", "shakespeare", "plays", "tiny"]);

    // A crash mid-upload left a shard without its record and a temporary: gone after a start.
    writeFileSync(join(dir, "datasets", "half.bin"), new Uint8Array(10));
    writeFileSync(join(dir, "datasets", "other.json.tmp"), "{");
    await server.close();
    server = await start();
    expect(stored()).toEqual(["plays.bin", "plays.json", "tiny.bin", "tiny.json"]);
    const { datasets } = (await (await fetch(`${server.url}/api/datasets`)).json()) as {
      datasets: { name: string }[];
    };
    expect(datasets.map((d) => d.name)).toEqual(["mnist", "shakespeare", "plays", "tiny"]);
    // The run on the brought text resumed with its dataset.
    const { runs } = (await (await fetch(`${server.url}/api/runs`)).json()) as {
      runs: { dataset: string }[];
    };
    expect(runs.map((r) => r.dataset)).toEqual(["plays"]);
    expect(existsSync(join(dir, "datasets", "half.bin"))).toBe(false);
  });
});
