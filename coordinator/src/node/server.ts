// The Node adapter: Hono on @hono/node-server for HTTP, `ws` for /ws, SQLite for the Store and
// the wall clock for the Clock. Everything Pangea does happens in the core; this file only
// connects it to sockets, timers and the disk.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import { mnistShardFromPackage } from "@pangea/shared/mnist-node";
import { tinyShakespeareShard } from "@pangea/shared/text-node";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { LoopDelay } from "./loop-delay.ts";
import { PingRounds } from "./ping-rounds.ts";
import { type IceServer, installSha256 } from "@pangea/shared";
import type { AdmissionLimits } from "../core/admission.ts";
import { Coordinator } from "../core/coordinator.ts";
import { datasetApi } from "../core/dataset-catalog.ts";
import { socketOriginAllowed } from "../core/surface.ts";
import { createApi } from "../core/http-api.ts";
import type { Peer } from "../core/ports.ts";
import type { RunConfigInput } from "../core/run-config.ts";
import { createApp, nodeAddress } from "./app.ts";
import { DatasetFiles } from "./dataset-files.ts";
import { threadEvaluator } from "./evaluation-thread.ts";
import { SqliteStore } from "./sqlite-store.ts";

// The coordinator hashes each version's parameter frame and each reduced part: node:crypto's
// SHA-256 instead of the portable one (the same digests).
installSha256((bytes) => createHash("sha256").update(bytes).digest());

export interface ServerOptions {
  /** Where SQLite and the admin token live (PANGEA_DATA_DIR, default ./.pangea). */
  dataDir: string;
  port: number;
  hostname: string;
  /** PANGEA_ADMIN_TOKEN; when absent, one is generated on first start and kept in dataDir. */
  adminToken?: string;
  /** Create the demo MNIST run when the store has no runs. */
  demo: boolean;
  /** The built web UI (PANGEA_WEB_DIR, default client-web/dist). */
  webDir?: string;
  /** Per-address join limits (PANGEA_NEW_SESSIONS_PER_MINUTE, PANGEA_SESSIONS_PER_ADDRESS). */
  admission?: Partial<AdmissionLimits>;
  /** The largest file a brought dataset may come from (PANGEA_DATASET_MAX_BYTES). */
  datasetMaxBytes?: number;
  /** Origins whose pages may call the API (PANGEA_CORS_ORIGINS, comma-separated); none by default. */
  corsOrigins?: readonly string[];
  /** Wrong admin tokens per address and minute before it is refused (PANGEA_ADMIN_FAILURES_PER_MINUTE). */
  adminFailuresPerMinute?: number;
  /** STUN/TURN servers handed to sessions for WebRTC (PANGEA_ICE_SERVERS); none by default. */
  iceServers?: IceServer[];
  log?: (line: string) => void;
}

/** The run `pnpm start` creates on first start. */
export const DEMO_RUN: RunConfigInput = {
  name: "MNIST demo",
  dataset: "mnist",
  batchSize: 64,
  strategy: { kind: "asynchronous", maxStaleness: 8, buffer: 1 },
  optimizer: { kind: "adamw", learningRate: 1e-3 },
  evaluateEvery: 20,
  stop: { targetAccuracy: 0.97, epochs: 50 },
};

/** WebSocket pings this often; a peer that missed the previous pong is terminated. */
const PING_MS = 15_000;
const TICK_MS = 250;
/** The WebSocket close code for a server going down (RFC 6455 §7.4.1). */
const GOING_AWAY = 1001;

function adminTokenFor(options: ServerOptions, log: (line: string) => void): string {
  if (options.adminToken) return options.adminToken;
  const file = `${options.dataDir}/admin-token`;
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const token = randomBytes(24).toString("base64url");
  mkdirSync(options.dataDir, { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  log(`admin token (shown once; kept in ${file}): ${token}`);
  return token;
}

export async function startServer(options: ServerOptions) {
  const log = options.log ?? ((line: string) => console.log(line));
  const startedAt = Date.now();
  const store = new SqliteStore(options.dataDir, {
    groupCommit: true,
    // The process is ahead of its disk (a full disk, an I/O error): nothing of it was told to
    // anyone; it stops, and a restart resumes from what is on disk.
    onCommitFailure: (e) => {
      console.error(`coordinator: a commit failed, stopping: ${(e as Error).message}`);
      process.exit(1);
    },
  });
  const evaluator = threadEvaluator();
  const builtIn = { mnist: mnistShardFromPackage, shakespeare: tinyShakespeareShard };
  const brought = new DatasetFiles(options.dataDir);
  const coordinator = new Coordinator(
    store,
    { now: () => Date.now() },
    {
      datasets: { ...builtIn, ...brought.sources() },
      admission: options.admission,
      evaluator,
      iceServers: options.iceServers,
      commits: store,
    },
  );
  const adminToken = adminTokenFor(options, log);
  if (options.demo && coordinator.runs.size === 0) {
    const run = coordinator.createRun(DEMO_RUN);
    log(`created the demo run ${run.id} (MNIST, 784-128-10)`);
  }
  for (const run of coordinator.runs.values())
    log(`run ${run.id} "${run.config.name}": ${run.record.state} at version ${run.record.version}`);

  const app = createApp({
    webDir: options.webDir,
    adminToken,
    corsOrigins: options.corsOrigins,
    adminFailuresPerMinute: options.adminFailuresPerMinute,
    commits: store,
  });
  // How long the event loop was held at most (frames, commits, heartbeats all wait behind it):
  // evaluation runs on a thread so that a GPT run keeps this small.
  const loopDelay = new LoopDelay();
  const runtimeMetrics = () => loopDelay.metrics();
  app.route(
    "/",
    datasetApi({
      adminToken,
      storage: brought,
      builtIn: async () => builtIn,
      maxBytes: options.datasetMaxBytes,
      added: (record) => coordinator.addDataset(record.name, brought.source(record.name)),
    }),
  );
  app.route(
    "/",
    createApi(coordinator, { adminToken, startedAt, runtimeMetrics, addressOf: nodeAddress }),
  );

  let stopping = false;
  const wss = new WebSocketServer({ noServer: true, maxPayload: coordinator.maxFrameBytes() });
  const pings = new PingRounds(() => wss.clients, PING_MS, TICK_MS);

  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>(
    (resolve) => {
      const s = serve(
        { fetch: app.fetch, port: options.port, hostname: options.hostname },
        (info) => resolve({ server: s, port: info.port }),
      );
    },
  );

  // The upgrade is checked here, before ws sees it: only /ws, and not while shutting down.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path !== "/ws") return refuse("404 Not Found");
    if (stopping) return refuse("503 Service Unavailable");
    if (!socketOriginAllowed(req.headers.origin, req.headers.host, options.corsOrigins ?? []))
      return refuse("403 Forbidden");
    // Sized to the largest run's update, which can grow when a run is created.
    wss.options.maxPayload = coordinator.maxFrameBytes();
    // The socket's own address: a header could be forged by anyone, so a proxy in front must be
    // one the operator configures (not yet supported; see the README).
    const address = req.socket.remoteAddress ?? "unknown";
    wss.handleUpgrade(req, socket, head, (ws) => connection(ws, address));
  });

  function connection(ws: WebSocket, address: string): void {
    const peer: Peer = {
      send: (frame) => ws.send(frame),
      close: (code, reason) => ws.close(code, reason),
      bufferedAmount: () => ws.bufferedAmount,
      address,
    };
    pings.heard(ws);
    coordinator.connect(peer);
    ws.on("pong", () => pings.heard(ws));
    ws.on("message", (data: RawData) => coordinator.receive(peer, toBytes(data)));
    ws.on("close", () => coordinator.disconnect(peer));
    // A frame over maxPayload, a bad opcode: ws closes the socket itself (1009, 1002).
    ws.on("error", () => {});
  }

  const pinger = setInterval(() => pings.tick(Date.now()), TICK_MS);
  const ticker = setInterval(() => coordinator.tick(), TICK_MS);

  const url = `http://${options.hostname === "0.0.0.0" ? "localhost" : options.hostname}:${port}`;
  log(
    `Pangea coordinator on ${url} (WebSocket ${url.replace("http", "ws")}/ws, data in ${options.dataDir})`,
  );

  /** Stops accepting, commits what can be committed, closes sockets as going away. */
  async function close(): Promise<void> {
    if (stopping) return;
    stopping = true;
    clearInterval(pinger);
    clearInterval(ticker);
    coordinator.shutdown();
    // What the shutdown committed is durable, and told, before the sockets close.
    store.syncNow();
    for (const ws of wss.clients) ws.close(GOING_AWAY, "the coordinator is restarting");
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      setTimeout(() => {
        for (const ws of wss.clients) ws.terminate();
        resolve();
      }, 2000).unref();
    });
    loopDelay.close();
    await evaluator.close();
    store.close();
  }

  return { url, port, coordinator, adminToken, close };
}

function toBytes(data: RawData): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
