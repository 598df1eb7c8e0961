// `pnpm pangea <command>`: the coordinator's command line.
//   serve                                   the coordinator, web UI and demo run (as `pnpm start`)
//   runs list                               every run, one line each
//   runs create <json-or-@file> [--from <checkpoint>]
//                                           a run from a JSON config (see README: HTTP API),
//                                           starting from a checkpoint's parameters (safetensors
//                                           or Cap'n Proto; the model defaults to the checkpoint's)
//   runs pause|resume|stop <run>
//   datasets list                           every dataset: kind, size, split, vocabulary or classes
//   datasets add <file> [<labels file>] [--kind text|images] [--name <name>]
//                [--vocabulary char|byte] [--classes <n>]
//                                           a dataset from a text file, or from images and labels
//                                           (IDX as MNIST ships them, or .npy; .gz is unpacked)
//   checkpoint <run> <file>                 the run's parameters as a Cap'n Proto message, or
//                                           as safetensors when <file> ends in .safetensors
//   worker <url> [--run <id>] [--count <n>] [--gpu] [--peers] [--name <leaderboard name>]
//                                           headless contributors until the run ends: the CPU
//                                           reference, or with --gpu the WGSL engine through Dawn
//                                           for Node where a GPU adapter exists
// The admin commands talk to PANGEA_URL (default http://127.0.0.1:8080) with PANGEA_ADMIN_TOKEN,
// or the token kept in PANGEA_DATA_DIR.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";
import { DEFAULT_DATASET_MAX_BYTES, type DatasetRecord } from "../core/dataset-catalog.ts";
import { admissionFromEnv } from "../core/admission.ts";
import { parseIceServers } from "../core/parameter-sources.ts";
import { parseOrigins } from "../core/surface.ts";
import { startServer } from "./server.ts";
import { gpuOrCpuTrainer } from "./gpu-trainer.ts";
import { nodePeers } from "./webrtc-peers.ts";
import { connectWorker } from "./ws-worker.ts";

const env = process.env;
const dataDir = env.PANGEA_DATA_DIR ?? "./.pangea";
const baseUrl = (env.PANGEA_URL ?? `http://127.0.0.1:${env.PORT ?? 8080}`).replace(/\/$/, "");

function fail(message: string): never {
  console.error(`pangea: ${message}`);
  process.exit(2);
}

function token(): string {
  if (env.PANGEA_ADMIN_TOKEN) return env.PANGEA_ADMIN_TOKEN;
  const file = `${dataDir}/admin-token`;
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  return fail(`no admin token: set PANGEA_ADMIN_TOKEN (or run where ${file} exists)`);
}

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  const form = body instanceof FormData;
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token()}`,
      ...(body === undefined || form ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: form ? body : JSON.stringify(body) }),
  }).catch((e: Error) => fail(`cannot reach ${baseUrl}: ${e.message}`));
  if (!res.ok) fail(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res;
}

async function serveCommand(): Promise<void> {
  const server = await startServer({
    dataDir,
    port: Number(env.PORT ?? 8080),
    hostname: env.HOST ?? "127.0.0.1",
    adminToken: env.PANGEA_ADMIN_TOKEN,
    demo: env.PANGEA_DEMO !== "0",
    webDir: env.PANGEA_WEB_DIR,
    admission: admissionFromEnv(env),
    ...(env.PANGEA_DATASET_MAX_BYTES
      ? { datasetMaxBytes: Number(env.PANGEA_DATASET_MAX_BYTES) }
      : {}),
    corsOrigins: parseOrigins(env.PANGEA_CORS_ORIGINS),
    ...(env.PANGEA_ADMIN_FAILURES_PER_MINUTE
      ? { adminFailuresPerMinute: Number(env.PANGEA_ADMIN_FAILURES_PER_MINUTE) }
      : {}),
    iceServers: parseIceServers(env.PANGEA_ICE_SERVERS),
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.log(`${signal}: committing and closing connections`);
      server.close().then(() => process.exit(0));
    });
  }
}

/** Workers that reconnect with backoff (and their session token) until the run ends. */
async function workerCommand(
  url: string,
  runId: string,
  count: number,
  gpu: boolean,
  displayName: string,
  peers: boolean,
): Promise<void> {
  const trainers = await Promise.all(
    Array.from({ length: count }, async () => {
      if (!gpu) return undefined;
      const { trainer, says } = await gpuOrCpuTrainer();
      console.log(says);
      return trainer;
    }),
  );
  const workers = trainers.map((trainer) =>
    connectWorker(url, {
      ...(runId ? { runId } : {}),
      ...(trainer ? { trainer } : {}),
      ...(displayName ? { displayName } : {}),
      ...(peers ? { peers: nodePeers } : {}),
    }),
  );
  await Promise.all(
    workers.map(async (w, i) => {
      await w.done;
      console.log(
        `worker ${i}: the run ended (${w.worker.updatesSent} updates, ${w.worker.acks} acknowledged, ${w.reconnects} reconnects)`,
      );
    }),
  );
  process.exit(0);
}

/** A file for a dataset, unpacked when gzip-compressed (as MNIST's IDX files ship). */
function readDatasetFile(path: string): Uint8Array {
  const bytes = readFileSync(path);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const limit = Number(env.PANGEA_DATASET_MAX_BYTES ?? DEFAULT_DATASET_MAX_BYTES);
  try {
    return gunzipSync(bytes, { maxOutputLength: limit });
  } catch (e) {
    return fail(`${path}: cannot unpack (${(e as Error).message}; the limit is ${limit} bytes)`);
  }
}

/** A dataset's default name: its file's, lowercased, without extensions and odd characters. */
function datasetName(path: string): string {
  const base = path.replace(/^.*\//, "").replace(/\..*$/, "").toLowerCase();
  return (
    base
      .replace(/[^a-z0-9_-]+/g, "-")
      .replace(/^-+/, "")
      .slice(0, 40) || "dataset"
  );
}

function describeDataset(d: DatasetRecord): string {
  const what =
    d.kind === "text"
      ? `text, ${d.train} / ${d.validation} characters, vocabulary ${d.vocabulary}${d.vocabularyKind ? ` (${d.vocabularyKind})` : ""}`
      : `images, ${d.train} / ${d.validation}, ${d.width} values, ${d.classes} classes`;
  return `${d.name.padEnd(16)} ${what}, ${d.bytes} bytes, sha256 ${d.sha256.slice(0, 12)}…${d.builtIn ? " (built in)" : ""}`;
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  const option = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  switch (command) {
    case "serve":
      return serveCommand();
    case "runs": {
      const [sub, arg] = args;
      if (sub === "list") {
        const { runs } = (await (await call("GET", "/api/runs")).json()) as {
          runs: Array<Record<string, unknown>>;
        };
        for (const r of runs)
          console.log(
            `${r.id}  ${String(r.state).padEnd(8)} v${r.version}  epoch ${r.epoch}  ${r.name} (${r.model}, ${r.strategy})`,
          );
        return;
      }
      if (sub === "create") {
        if (!arg) fail("runs create <json or @file> [--from <checkpoint>]");
        const text = arg.startsWith("@") ? readFileSync(arg.slice(1), "utf8") : arg;
        // From a checkpoint: the config and the file as a form.
        const from = option("from");
        let body: unknown = JSON.parse(text);
        if (from) {
          const form = new FormData();
          form.set("config", text);
          form.set("checkpoint", new Blob([readFileSync(from)]), from.replace(/^.*\//, ""));
          body = form;
        }
        const run = (await (await call("POST", "/api/runs", body)).json()) as {
          id: string;
        };
        console.log(run.id);
        return;
      }
      if (sub === "pause" || sub === "resume" || sub === "stop") {
        if (!arg) fail(`runs ${sub} <run>`);
        await call("POST", `/api/runs/${arg}/${sub}`);
        return;
      }
      return fail("runs list|create|pause|resume|stop");
    }
    case "datasets": {
      const [sub, ...files] = args.filter(
        (a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"),
      );
      if (sub === "list") {
        const { datasets } = (await (await call("GET", "/api/datasets")).json()) as {
          datasets: DatasetRecord[];
        };
        for (const d of datasets) console.log(describeDataset(d));
        return;
      }
      if (sub === "add") {
        if (files.length < 1 || files.length > 2)
          fail("datasets add <file> [<labels file>] [--kind text|images] [--name <name>]");
        const kind = option("kind") ?? (files.length === 2 ? "images" : "text");
        const form = new FormData();
        form.set("kind", kind);
        form.set("name", option("name") ?? datasetName(files[0]!));
        for (const key of ["vocabulary", "classes"]) {
          const value = option(key);
          if (value !== undefined) form.set(key, value);
        }
        const parts = kind === "images" ? ["images", "labels"] : ["file"];
        if (files.length !== parts.length)
          fail(
            kind === "images"
              ? "an image set is two files: images and labels"
              : "a text is one file",
          );
        parts.forEach((part, i) => {
          const path = files[i]!;
          form.set(
            part,
            new Blob([readDatasetFile(path) as Uint8Array<ArrayBuffer>]),
            path.replace(/^.*\//, ""),
          );
        });
        const record = (await (await call("POST", "/api/datasets", form)).json()) as DatasetRecord;
        console.log(describeDataset(record));
        return;
      }
      return fail("datasets list|add");
    }
    case "checkpoint": {
      const [run, file] = args;
      if (!run || !file) fail("checkpoint <run> <file>");
      // A .safetensors file gets the safetensors format; anything else the Cap'n Proto message.
      const format = file.endsWith(".safetensors") ? "safetensors" : "capnp";
      const res = await call("GET", `/api/runs/${run}/checkpoint?format=${format}`);
      writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
      console.log(`wrote ${file}`);
      return;
    }
    case "worker": {
      const url = args[0];
      if (!url || url.startsWith("--"))
        fail(
          "worker <url> [--run <id>] [--count <n>] [--gpu] [--peers] [--name <leaderboard name>]",
        );
      const gpu = args.includes("--gpu");
      const count = Number(option("count") ?? 1);
      const peers = args.includes("--peers");
      return workerCommand(url, option("run") ?? "", count, gpu, option("name") ?? "", peers);
    }
    default:
      fail("commands: serve, runs, checkpoint, worker");
  }
}

// Run when this file is the entry point (not when main.ts imports it).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  await main(process.argv.slice(2));
