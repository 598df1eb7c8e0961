// `pnpm bench:coordinator`: the coordinator's figures, in one run, on 127.0.0.1 only.
//
// 1. Ingest: frames of one gradient update travel over a real WebSocket and are received,
//    decoded, validated (core/validate.ts, against a live lease) and accumulated into a float64
//    sum, the work of the coordinator's hot path, for the MNIST-size update (101,770 floats) and
//    a 4,000,000-float one; beside a plain Float32Array sum loop over the same bytes.
// 2. Load: the real coordinator (a child process, `pangea serve`, SQLite in a scratch dir) with
//    10, 100 and 1,000 simulated workers that answer each lease with a precomputed update at
//    once: updates/s, p50/p99 from sending an update to its acknowledgement (measured by the
//    worker, so it includes the loopback hop both ways), and the coordinator's resident memory.
//    The edge (wrangler dev) with 100 of them beside it, and its isolate's memory as V8 counts
//    it (heap plus array buffers), read through the inspector: the figure the 128 MB limit is on.
// 3. CPU per event: the core's longest handlers (an update that closes a version and commits
//    it; one that also evaluates the held-out set), timed in this process on MNIST,
//    beside the Workers platform's CPU limits. (workerd freezes clocks while code runs, so a
//    Durable Object cannot time itself; the core is the same code there.)
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import {
  decodeMessage,
  encodeMessage,
  type GradientUpdate,
  type ModelSpec,
  mlpSpec,
  mnistMlp,
  PROTOCOL_VERSION,
  parameterLayout,
  partHash,
  partOwners,
  partRange,
  pieceHashes,
  reducePart,
  type WireMessage,
} from "@pangea/shared";
import { randomFloats } from "@pangea/shared/testing";
import { WebSocket, WebSocketServer } from "ws";
import { resolveRunConfig } from "../src/core/run-config.ts";
import { type Backend, freePort, serverProcess } from "../src/testing/server-process.ts";
import { type Crowd, openCrowd } from "../src/testing/crowd.ts";
import { Simulation } from "../src/testing/simulation.ts";
import { checkUpdate } from "../src/core/validate.ts";

const require = createRequire(import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- 1. ingest ------------------------------------------------------------------------------

function updateFrame(model: ModelSpec): Uint8Array {
  const layout = parameterLayout(model);
  const update: GradientUpdate = {
    gradientId: "g",
    gradients: layout.slots.map((s, i) => ({
      shape: s.shape,
      dtype: "float32",
      name: s.name,
      data: randomFloats(s.size, i + 1, 1e-3),
    })),
    loss: 1,
    timestamp: 0,
    nodeId: "s",
    batchId: "0:0",
    leaseId: 1,
    baseVersion: 0,
    sampleCount: 64,
    encoding: "fp32",
    kind: "gradient",
  };
  return encodeMessage({
    messageId: "m",
    sender: "s",
    recipient: "coordinator",
    timestamp: 0,
    payload: { type: "gradientUpdate", ...update },
  });
}

/** acc += values: the accumulation of a mean, and the floor's loop. */
function sumInto(acc: Float64Array, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) acc[i]! += values[i]!;
}

/** Seconds per frame through WebSocket receive → decode → validate → accumulate. */
async function ingest(
  model: ModelSpec,
  frames: number,
): Promise<{ seconds: number; handler: number; floor: number; bytes: number }> {
  const frame = updateFrame(model);
  const layout = parameterLayout(model);
  const strategy = resolveRunConfig({
    model,
    dataset: "blobs",
    strategy: { kind: "asynchronous" },
  }).strategy;
  const lease = {
    id: 1,
    sessionId: "s",
    epoch: 0,
    batch: 0,
    baseVersion: 0,
    issuedAt: 0,
    deadline: Number.MAX_SAFE_INTEGER,
    replica: 0 as const,
  };
  const sum = layout.slots.map((s) => new Float64Array(s.size));
  let received = 0;
  let handlerMs = 0;
  let finish!: () => void;
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    maxPayload: frame.byteLength + 65536,
  });
  wss.on("connection", (ws) => {
    ws.on("message", (data: Buffer) => {
      const h0 = performance.now();
      const decoded = decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), {
        maxFrameBytes: frame.byteLength + 65536,
      });
      if (!decoded.ok || decoded.message.payload.type !== "gradientUpdate")
        throw new Error("bad frame");
      const checked = checkUpdate(decoded.message.payload, {
        sessionId: "s",
        lease,
        now: 0,
        version: 0,
        strategy,
        layout,
        maxNorm: 1e9,
        samples: 64,
        innerSteps: 1,
      });
      if (!checked.ok) throw new Error(checked.message);
      for (const [t, values] of checked.tensors.entries()) sumInto(sum[t]!, values);
      handlerMs += performance.now() - h0;
      if (++received === frames) finish();
    });
  });
  await new Promise((r) => wss.on("listening", r));
  const { port } = wss.address() as { port: number };
  // The sender is another thread, as a worker is another machine: its copying does not share
  // the receiver's thread. Its frames carry a zero mask, which ws then skips applying (a browser
  // masks with a random key on its own machine): left to mask 16 MB a frame, the sender was the
  // slower side, and the receiver stood idle a third of the time. The receiver unmasks as ever.
  const sender = new Worker(
    `const { workerData, parentPort } = require("node:worker_threads");
     const WebSocket = require(workerData.ws);
     const ws = new WebSocket(workerData.url, {
       maxPayload: workerData.frame.byteLength + 65536,
       generateMask: (mask) => mask.fill(0),
     });
     ws.on("open", () => parentPort.postMessage("open"));
     parentPort.on("message", async (n) => {
       for (let i = 0; i < n; i++) {
         ws.send(workerData.frame);
         while (ws.bufferedAmount > 64 << 20) await new Promise((r) => setTimeout(r, 1));
       }
     });`,
    { eval: true, workerData: { ws: require.resolve("ws"), url: `ws://127.0.0.1:${port}`, frame } },
  );
  await new Promise((r) => sender.once("message", r));
  const run = async (n: number) => {
    received = 0;
    const target = frames;
    frames = n;
    const done = new Promise<void>((r) => {
      finish = r;
    });
    const t0 = performance.now();
    sender.postMessage(n);
    await done;
    frames = target;
    return (performance.now() - t0) / 1000 / n;
  };
  await run(Math.max(3, Math.min(50, frames)));
  const seconds = Math.min(await run(frames), await run(frames));
  const handler = handlerMs / 1000 / (2 * frames + Math.max(3, Math.min(50, frames)));
  await sender.terminate();
  await new Promise((r) => wss.close(r));
  // The floor: the same floats added into a float64 sum by a plain loop.
  const floats = new Float32Array(parameterLayout(model).size).map((_, i) => (i % 7) * 1e-3);
  const acc = new Float64Array(floats.length);
  sumInto(acc, floats);
  const floorRun = (n: number) => {
    const t0 = performance.now();
    for (let r = 0; r < n; r++) sumInto(acc, floats);
    return (performance.now() - t0) / 1000 / n;
  };
  const floor = Math.min(floorRun(frames), floorRun(frames));
  return { seconds, handler, floor, bytes: floats.byteLength };
}

// --- 2. load --------------------------------------------------------------------------------

function rssMiB(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** The resident memory of a process and all its descendants (wrangler runs workerd beneath). */
function treeRssMiB(root: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const visit = (pid: number) => {
    total += rssMiB(pid) || 0;
    for (const c of children.get(pid) ?? []) visit(c);
  };
  visit(root);
  return total;
}

interface LoadRow {
  workers: number;
  updates: number;
  seconds: number;
  p50: number;
  p99: number;
  rss: number;
  /** The edge: the most the Worker isolate held (V8 heap used plus array buffers), MiB. */
  isolate?: number;
}

/** The Worker isolate's memory under wrangler dev, through its inspector's Runtime.getHeapUsage. */
async function isolateMiB(inspectorPort: number): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${inspectorPort}/ws`);
  try {
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const reply = new Promise<{ usedSize: number; backingStorageSize: number }>((resolve) =>
      ws.on("message", (data: Buffer) => {
        const m = JSON.parse(String(data)) as { id?: number; result?: never };
        if (m.id === 1 && m.result) resolve(m.result);
      }),
    );
    ws.send(JSON.stringify({ id: 1, method: "Runtime.getHeapUsage" }));
    const { usedSize, backingStorageSize } = await reply;
    return (usedSize + backingStorageSize) / 2 ** 20;
  } finally {
    ws.close();
  }
}

interface LoadOptions {
  backend?: Backend;
  /**
   * How long a worker computes before it answers a lease (uniform in 0.5–1.5× this), in ms; 0
   * answers at once. At 0 the loop is closed: every worker always has an update in flight, so by
   * Little's law the mean acknowledgement is workers ÷ updates/s, whatever the coordinator does.
   * A think time offers a load (workers ÷ think time) that acknowledgements can keep up with.
   */
  thinkMs?: number;
  /** The asynchronous run's updates per version (1: a version per update). */
  buffer?: number;
  /** Samples per batch (the run's default, 64, when absent). */
  batchSize?: number;
  /** A synchronous run of this many updates per version instead (every worker in each one). */
  targetUpdates?: number;
  /**
   * Peers: the workers join with peers and reduce their updates in groups of this many. The
   * bench's workers all send the same update, so a group's reduced part is that update's part
   * bit for bit (checked once below): they answer a plan with it at once, as if the WebRTC
   * transfers between them took no time. What is measured is the coordinator's side.
   */
  reduceGroup?: number;
}

interface LoadTraffic {
  /** The coordinator's WebSocket bytes in and out per sample trained, over the whole run. */
  inPerSample: number;
  outPerSample: number;
}

async function load(
  workers: number,
  seconds: number,
  options: LoadOptions = {},
): Promise<LoadRow & LoadTraffic> {
  const backend = options.backend ?? "node";
  const thinkMs = options.thinkMs ?? 0;
  const inspectorPort = backend === "edge" ? await freePort() : undefined;
  // Every simulated worker comes from 127.0.0.1: the per-address join limits are raised to let
  // them all in (a real deployment sees them from as many addresses).
  const admission = {
    PANGEA_NEW_SESSIONS_PER_MINUTE: "100000",
    PANGEA_SESSIONS_PER_ADDRESS: "100000",
  };
  // NODE_PROFILE=dir: Node's coordinator writes a CPU profile of each row there when it stops.
  const nodeProfile = backend === "node" ? process.env.NODE_PROFILE : undefined;
  const server = await serverProcess({
    token: "bench",
    backend,
    inspectorPort,
    env: admission,
    nodeArgs: nodeProfile ? ["--cpu-prof", `--cpu-prof-dir=${nodeProfile}`] : [],
  });
  const { url } = server;
  try {
    // The demo run's model and data; asynchronous, each update its own version (the busiest
    // case for the store), a lease long enough that none expires during the bench.
    const group = options.reduceGroup ?? 0;
    const res = await server.api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        name: "bench",
        dataset: "mnist",
        strategy: options.targetUpdates
          ? { kind: "synchronous", targetUpdates: options.targetUpdates, stragglerMs: 2000 }
          : { kind: "asynchronous", maxStaleness: 1000, buffer: options.buffer ?? 1 },
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
        ...(group > 0 ? { peers: true, reduceGroup: group } : {}),
        leaseMs: 600_000,
        evaluateEvery: 1_000_000,
      }),
    });
    if (!res.ok) throw new Error(`creating the run: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    const layout = parameterLayout(mnistMlp);
    const flat = new Float32Array(layout.size);
    const tensors = layout.slots.map((s, i) => {
      flat.set(randomFloats(s.size, i + 7, 1e-4), s.offset);
      return {
        shape: s.shape,
        dtype: "float32" as const,
        name: s.name,
        data: flat.subarray(s.offset, s.offset + s.size),
      };
    });
    const hashes = group > 0 ? pieceHashes(flat) : new Uint8Array(0);
    /** Each part of a group of g: its bytes and hash (every member's update is `flat`). */
    const partsOf = new Map<string, { data: Uint8Array; sha256: string }>();
    const part = (g: number, p: number) => {
      const key = `${g}:${p}`;
      let known = partsOf.get(key);
      if (!known) {
        const { start, end } = partRange(flat.length, g, p);
        const values = flat.subarray(start, end);
        const reduced = reducePart(Array(g).fill(values), Array(g).fill(8), "mean", 0);
        if (partHash(reduced) !== partHash(values))
          throw new Error("a mean of equal updates is not that update");
        known = {
          data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
          sha256: partHash(values),
        };
        partsOf.set(key, known);
      }
      return known;
    };
    const latencies: number[] = [];
    let updates = 0;
    let measuring = false;
    let stop = false;
    const sockets: WebSocket[] = [];
    const send = (ws: WebSocket, message: WireMessage["payload"], n: number) =>
      ws.send(
        encodeMessage({
          messageId: `b${n}`,
          sender: "",
          recipient: "coordinator",
          timestamp: 0,
          payload: message,
        }),
      );
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        // Without permessage-deflate, as the deployed edge answers a browser (wrangler.toml's
        // no_web_socket_compression) and as the Node server does: wrangler dev's own proxy
        // would otherwise deflate every frame, on both ends, on these two cores.
        const ws = new WebSocket(`${url.replace("http", "ws")}/ws`, { perMessageDeflate: false });
        sockets.push(ws);
        let sentAt = 0;
        let n = 0;
        let session = "";
        let whole: GradientUpdate | undefined;
        ws.on("message", (data: Buffer) => {
          // A parameter frame (the model, 400 KB) is all a simulated worker would not read: it
          // answers with its precomputed update. Not decoding it leaves the two cores to the
          // coordinator; every other message is small.
          if (data.byteLength > 65536) return;
          const d = decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          if (!d.ok || stop) return;
          const p = d.message.payload;
          if (p.type === "welcome") {
            session = p.sessionId;
            send(ws, { type: "leaseRequest", maxBatches: 1 }, n++);
          } else if (p.type === "lease") {
            const update: GradientUpdate = {
              gradientId: `${w}:${n}`,
              gradients: tensors,
              loss: 1,
              timestamp: 0,
              nodeId: "",
              batchId: p.batch.batchId,
              leaseId: p.leaseId,
              baseVersion: p.baseVersion,
              // What the lease handed out (an epoch's last batch is short): a claim of more
              // is refused, and a worker here would then wait for ever.
              sampleCount: p.batch.offsets?.length ?? 64,
              encoding: "fp32",
              kind: "gradient",
            };
            whole = update;
            const answer = () => {
              if (stop) return;
              sentAt = performance.now();
              const declaration = { ...update, gradients: [], pieceHashes: hashes };
              send(ws, { type: "gradientUpdate", ...(group > 0 ? declaration : update) }, n++);
            };
            if (thinkMs > 0) setTimeout(answer, thinkMs * (0.5 + Math.random()));
            else answer();
          } else if (p.type === "reducePlan") {
            const g = p.members.length;
            const me = p.members.findIndex((m) => m.session === session);
            for (let k = 0; k < g; k++) {
              const owners = partOwners(g, k);
              if (owners.reducer !== me && owners.checker !== me) continue;
              const { data, sha256 } = part(g, k);
              send(
                ws,
                {
                  type: "reducedPart",
                  group: p.group,
                  part: k,
                  data: owners.reducer === me ? data : new Uint8Array(0),
                  sha256,
                  badBytes: [],
                  missing: [],
                },
                n++,
              );
            }
          } else if (p.type === "error" && p.code === "reduceFallback" && whole) {
            send(ws, { type: "gradientUpdate", ...whole }, n++);
          } else if (p.type === "ack") {
            if (measuring) {
              latencies.push(performance.now() - sentAt);
              updates++;
            }
            send(ws, { type: "leaseRequest", maxBatches: 1 }, n++);
          } else if (p.type === "error" && p.retryAfterMs > 0) {
            setTimeout(
              () => !stop && send(ws, { type: "leaseRequest", maxBatches: 1 }, n++),
              p.retryAfterMs,
            );
          }
        });
        await new Promise((r) => ws.on("open", r));
        send(
          ws,
          {
            type: "join",
            runId: id,
            sessionToken: "",
            client: { kind: "bench", adapter: "", softwareFallback: true, userAgent: "" },
            encodings: ["fp32"],
            protocolVersion: PROTOCOL_VERSION,
            ...(group > 0 ? { peers: true } : {}),
          },
          n++,
        );
      }),
    );
    await sleep(2000); // warm-up
    // EDGE_PROFILE=dir: a CPU profile of the isolate over the measured seconds, one file per row
    // (open it in Chrome's DevTools): where the Durable Object spends its time. Its rows leave
    // the isolate's memory out.
    const profile = inspectorPort && process.env.EDGE_PROFILE;
    const profiler = profile ? new WebSocket(`ws://127.0.0.1:${inspectorPort}/ws`) : undefined;
    const profiled = profiler
      ? new Promise<unknown>((resolve) =>
          profiler.on("message", (data: Buffer) => {
            const m = JSON.parse(String(data)) as { id?: number; result?: { profile?: unknown } };
            if (m.id === 3 && m.result?.profile) resolve(m.result.profile);
          }),
        )
      : undefined;
    if (profiler) {
      await new Promise((r) => profiler.once("open", r));
      profiler.send(JSON.stringify({ id: 1, method: "Profiler.enable" }));
      profiler.send(JSON.stringify({ id: 2, method: "Profiler.start" }));
    }
    measuring = true;
    const t0 = performance.now();
    let isolate: number | undefined;
    while (performance.now() - t0 < seconds * 1000) {
      // The inspector takes one client at a time: a profiled row does not read the memory.
      if (inspectorPort && !profiler)
        isolate = Math.max(isolate ?? 0, await isolateMiB(inspectorPort));
      await sleep(1000);
    }
    measuring = false;
    if (profiler && profile) {
      profiler.send(JSON.stringify({ id: 3, method: "Profiler.stop" }));
      const file = join(profile, `edge-${workers}-workers.cpuprofile`);
      mkdirSync(profile, { recursive: true });
      writeFileSync(file, JSON.stringify(await profiled));
      profiler.close();
      console.log(`(profile: ${file})`);
    }
    const elapsed = (performance.now() - t0) / 1000;
    const rss = treeRssMiB(server.process!.pid!);
    stop = true;
    const { traffic } = (await (await server.api(`/api/runs/${id}`)).json()) as {
      traffic: { bytesIn: number; bytesOut: number; samples: number };
    };
    for (const ws of sockets) ws.terminate();
    latencies.sort((a, b) => a - b);
    const p50 = quantile(latencies, 0.5);
    return {
      workers,
      updates,
      seconds: elapsed,
      p50,
      p99: quantile(latencies, 0.99),
      rss,
      isolate,
      inPerSample: traffic.bytesIn / Math.max(1, traffic.samples),
      outPerSample: traffic.bytesOut / Math.max(1, traffic.samples),
    };
  } finally {
    // A profile is written at a graceful exit (SIGTERM), not at dispose's SIGKILL.
    const child = server.process;
    if (nodeProfile && child && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    await server.dispose();
  }
}

interface IdleRow {
  sessions: number;
  connectSeconds: number;
  rssBefore: number;
  rss: number;
  heartbeats: number;
  p50: number;
  p99: number;
  /** The dashboard's page of 50 workers, and the admin status with every row, in ms. */
  page: number;
  fullStatus: number;
}

/**
 * Many connected sessions, idle but heartbeating at the coordinator's `heartbeatMs`: a public
 * network's crowd of open tabs between leases. The sessions join the demo run from one process
 * (opened 250 at a time), then heartbeat for `seconds`; the round trip of each heartbeat is timed
 * by its session, the coordinator's RSS read before and after.
 */
async function idle(sessions: number, seconds: number): Promise<IdleRow> {
  const admission = {
    PANGEA_NEW_SESSIONS_PER_MINUTE: "1000000",
    PANGEA_SESSIONS_PER_ADDRESS: "1000000",
  };
  const server = await serverProcess({ token: "bench", demo: true, env: admission });
  let crowd: Crowd | undefined;
  try {
    const runs = (await (await server.api("/api/runs")).json()) as { runs: { id: string }[] };
    const runId = runs.runs[0]!.id;
    const pid = server.process!.pid!;
    const rssBefore = rssMiB(pid);
    const latencies: number[] = [];
    let measuring = false;
    const t0 = performance.now();
    crowd = await openCrowd(server.url, runId, sessions, {
      onRoundTrip: (ms) => measuring && latencies.push(ms),
    });
    const connectSeconds = (performance.now() - t0) / 1000;
    measuring = true;
    await sleep(seconds * 1000);
    measuring = false;
    const rss = rssMiB(pid);
    const timed = async (path: string) => {
      const t = performance.now();
      const res = await server.api(path);
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      await res.arrayBuffer();
      return performance.now() - t;
    };
    const page = await timed(`/api/runs/${runId}/workers?limit=50`);
    const fullStatus = await timed(`/api/runs/${runId}`);
    latencies.sort((a, b) => a - b);
    return {
      sessions,
      connectSeconds,
      rssBefore,
      rss,
      heartbeats: latencies.length,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      page,
      fullStatus,
    };
  } finally {
    crowd?.close();
    await server.dispose();
  }
}

/** The value at fraction `f` of ascending `sorted` (1 is the largest); NaN when it is empty. */
function quantile(sorted: readonly number[], f: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? Number.NaN;
}

// --- 3. CPU per event -------------------------------------------------------------------------

interface EventTimes {
  commit: number[];
  evaluate: number[];
}

/** Four CPU-reference workers train MNIST against an in-process core; its handlers are timed. */
function cpuPerEvent(): EventTimes {
  const sim = new Simulation();
  const coordinator = sim.coordinator;
  const run = coordinator.createRun({
    name: "cpu",
    dataset: "mnist",
    strategy: { kind: "asynchronous", maxStaleness: 8, buffer: 1 },
    evaluateEvery: 10,
    stop: { versions: 400 },
  });
  const times: EventTimes = { commit: [], evaluate: [] };
  const receive = coordinator.receive.bind(coordinator);
  coordinator.receive = (peer, frame) => {
    const version = run.record.version;
    const evaluated = run.record.evaluation?.version;
    const t = performance.now();
    receive(peer, frame);
    const ms = performance.now() - t;
    if (run.record.evaluation?.version !== evaluated) times.evaluate.push(ms);
    else if (run.record.version !== version) times.commit.push(ms);
  };
  for (let i = 0; i < 4; i++) sim.addWorker({ runId: run.id });
  sim.runUntil(() => run.record.state === "finished");
  return times;
}

// --- the run --------------------------------------------------------------------------------

// BENCH_ONLY=ingest,load,peers,idle,cpu runs some sections (all by default), LOAD_BACKENDS=node or
// edge one side of the load rows; IDLE_SESSIONS sets the crowd of idle sessions (10,000).
const only = new Set((process.env.BENCH_ONLY ?? "ingest,load,peers,idle,cpu").split(","));

if (only.has("ingest")) {
  console.log(
    "Ingest: WebSocket receive → decode → validate → accumulate (float64), one update per frame",
  );
  console.log(
    "update              floats     ingest GB/s   Float32Array sum GB/s   ratio   ms/update (of which decode+validate+accumulate)",
  );
  for (const [name, model, frames] of [
    ["MNIST MLP", mnistMlp, 400],
    ["4M-float update", mlpSpec([1998, 2000, 2]), 20],
  ] as const) {
    const { seconds, handler, floor, bytes } = await ingest(model, frames);
    console.log(
      `${name.padEnd(18)}${String(bytes / 4).padStart(9)}${(bytes / seconds / 1e9).toFixed(2).padStart(14)}${(bytes / floor / 1e9).toFixed(2).padStart(24)}${(floor / seconds).toFixed(2).padStart(8)}x${(seconds * 1000).toFixed(2).padStart(12)} (${(handler * 1000).toFixed(2)})`,
    );
  }
}

if (only.has("load")) {
  console.log(
    "\nLoad: the coordinator (child process) with simulated workers; asynchronous MNIST run, fp32 updates",
  );
  const row = (label: string, r: LoadRow, how: string) =>
    console.log(
      `${label.padEnd(6)}${String(r.workers).padStart(7)}${(r.updates / r.seconds).toFixed(0).padStart(12)}${r.p50.toFixed(1).padStart(9)}${r.p99.toFixed(1).padStart(9)}${r.rss.toFixed(0).padStart(20)}${(r.isolate === undefined ? "–" : r.isolate.toFixed(1)).padStart(16)}   ${how}`,
    );
  console.log(
    "where  workers   updates/s   p50 ms   p99 ms   coordinator RSS MiB   isolate MiB   workers answer",
  );
  const backends = process.env.LOAD_BACKENDS ?? "node,edge";
  const atOnce = "at once, a version per update";
  if (backends.includes("node")) {
    for (const workers of [10, 100, 1000]) row("node", await load(workers, 10), atOnce);
    // An offered load instead of a closed loop: 1,000 workers that each compute for about a
    // second offer about 1,000 updates/s, and the acknowledgement is the coordinator's latency.
    // A batch is leased to one worker at a time, so 1,000 of them need 1,000 batches: MNIST's
    // 9,000 training digits in batches of 8 (1,125 an epoch; 141 in batches of 64).
    for (const buffer of [1, 16])
      row(
        "node",
        await load(1000, 10, { thinkMs: 1000, buffer, batchSize: 8 }),
        `after ~1 s, batch 8, ${buffer === 1 ? "a version per update" : `a version per ${buffer} updates`}`,
      );
  }
  // The edge: the Worker and the run's Durable Object under `wrangler dev` (workerd on this
  // machine, storage on local disk), the same simulated workers. RSS counts wrangler and workerd;
  // the isolate's heap plus array buffers is what the 128 MB limit is on. 1,000 as well, as on
  // Node: past its lease allowance a run's memory should stay flat, not grow with tabs (those
  // over it are told to retry later).
  if (backends.includes("edge"))
    for (const workers of [100, 1000])
      row("edge", await load(workers, 10, { backend: "edge" }), atOnce);
}

if (only.has("peers")) {
  console.log(
    "\nPeers: a synchronous MNIST run (batches of 8, every worker's update in each version), updates sent whole against reduced among the workers in groups of 4",
  );
  console.log(
    "workers   updates        updates/s   p50 ms   p99 ms   coordinator kB in / sample   kB out / sample",
  );
  for (const workers of [10, 100, 1000])
    for (const group of [0, 4]) {
      const r = await load(workers, 10, {
        targetUpdates: workers,
        batchSize: 8,
        reduceGroup: group,
      });
      console.log(
        `${String(workers).padStart(7)}   ${(group ? "reduced, 4" : "whole").padEnd(12)}${(r.updates / r.seconds).toFixed(0).padStart(11)}${r.p50.toFixed(1).padStart(9)}${r.p99.toFixed(1).padStart(9)}${(r.inPerSample / 1e3).toFixed(2).padStart(29)}${(r.outPerSample / 1e3).toFixed(2).padStart(18)}`,
      );
    }
}

if (only.has("idle")) {
  const n = Number(process.env.IDLE_SESSIONS ?? 10_000);
  console.log(
    `\nIdle sessions: ${n.toLocaleString("en-US")} joined to the demo run (Node), heartbeating every 10 s, for 30 s`,
  );
  console.log(
    "sessions   connect s   RSS MiB before → after   KiB/session   heartbeats   p50 ms   p99 ms   workers page ms   full admin status ms",
  );
  const r = await idle(n, Number(process.env.IDLE_SECONDS ?? 30));
  console.log(
    `${String(r.sessions).padStart(8)}${r.connectSeconds.toFixed(1).padStart(12)}${`${r.rssBefore.toFixed(0)} → ${r.rss.toFixed(0)}`.padStart(25)}${((1024 * (r.rss - r.rssBefore)) / r.sessions).toFixed(1).padStart(14)}${String(r.heartbeats).padStart(13)}${r.p50.toFixed(1).padStart(9)}${r.p99.toFixed(1).padStart(9)}${r.page.toFixed(1).padStart(18)}${r.fullStatus.toFixed(1).padStart(23)}`,
  );
}

if (only.has("cpu")) {
  console.log(
    "\nCPU per event: the core's handlers on MNIST (4 CPU-reference workers, asynchronous, 400 versions)",
  );
  console.log("event                                  count   p50 ms   p99 ms   max ms");
  const events = cpuPerEvent();
  for (const [name, list] of [
    ["update → version committed", events.commit],
    ["update → committed + 1,000 evaluated", events.evaluate],
  ] as const) {
    const sorted = [...list].sort((a, b) => a - b);
    const q = (f: number) => quantile(sorted, f).toFixed(2).padStart(9);
    console.log(`${name.padEnd(38)}${String(sorted.length).padStart(6)}${q(0.5)}${q(0.99)}${q(1)}`);
  }
  console.log(
    "Workers CPU limit per event: 30,000 ms by default on the paid plan (up to 300,000); 10 ms on the free plan.",
  );
}
process.exit(0);
