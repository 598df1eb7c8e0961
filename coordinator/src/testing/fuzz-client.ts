// A black-box fuzzer for a running coordinator (Node or `wrangler dev`): many WebSocket
// connections, each joined as a session of the run, send a stream of frames drawn from three
// kinds, and keep every reply:
//   random     bytes and hostile frames made from real traffic (shared's frameMutations: bit
//              flips, truncations, segment tables, pointer soups, lists longer than the frame)
//   mutated    the same mutations of this run's own traffic (a join, heartbeats, a signal, an
//              evaluation report, and a gradient update with the model's real shapes)
//   hostile    well-formed messages with every field at a limit: NaN, ±Inf and 3e38 values,
//              tensors missing, extra, reshaped or of another dtype, int8 with a NaN scale,
//              sample counts of 0 and 2³²−1, base versions of 2⁵³−1 (the largest the encoder
//              writes; beyond it the mutations reach), megabyte strings, leases
//              that are not the session's, signals to anyone, protocol 65535, a second join
// None of these may be accepted: the fuzzer holds no lease it computed anything for, so any
// `ack` it receives, or a second `welcome` on one connection, is a violation.
import {
  encodeMessage,
  type ModelSpec,
  PROTOCOL_VERSION,
  type Payload,
  parameterLayout,
  decodeMessage,
} from "@pangea/shared";
import { frameMutations, seededRandom } from "@pangea/shared/testing";
import { WebSocket } from "ws";

export interface FuzzOptions {
  /** ws://host:port/ws?run=… */
  url: string;
  runId: string;
  model: ModelSpec;
  frames: number;
  connections: number;
  seed: number;
  /** Loopback addresses the connections leave from, round robin (per-address limits). */
  addresses?: readonly string[];
}

export interface FuzzReport {
  frames: number;
  bytes: number;
  seconds: number;
  /** Replies by type, errors by code. */
  replies: Record<string, number>;
  /** Connections the coordinator closed (then opened again), and how many by close code. */
  closes: number;
  closeCodes: Record<number, number>;
  violations: string[];
}

export async function fuzzCoordinator(o: FuzzOptions): Promise<FuzzReport> {
  const report: FuzzReport = {
    frames: 0,
    bytes: 0,
    seconds: 0,
    replies: {},
    closes: 0,
    closeCodes: {},
    violations: [],
  };
  const started = performance.now();
  const perConnection = Math.ceil(o.frames / o.connections);
  await Promise.all(
    Array.from({ length: o.connections }, (_, i) => connectionLoop(o, i, perConnection, report)),
  );
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** Frames a connection sends between sentinels, and sentinels it may have unanswered. */
const WINDOW = 128;
const AHEAD = 2;

async function connectionLoop(o: FuzzOptions, index: number, frames: number, report: FuzzReport) {
  const rand = seededRandom((o.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const make = generators(rand, o.model, o.runId);
  const address = o.addresses?.[index % o.addresses.length];
  let sent = 0;
  while (sent < frames) {
    const ws = await open(o.url, address);
    if (!ws) {
      report.closes++;
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    let welcomes = 0;
    let closed = false;
    // Flow control: every WINDOW frames a sentinel (a message a worker never sends, which the
    // coordinator answers with an error that names it); frames are answered in order, so the
    // sentinel's answer means everything before it was read. Without it the fuzzer would only
    // measure how fast it can fill a socket buffer.
    let sentinels = 0;
    let answered = 0;
    let wake: (() => void) | undefined;
    ws.on("close", (code: number) => {
      closed = true;
      report.closeCodes[code] = (report.closeCodes[code] ?? 0) + 1;
      wake?.();
    });
    ws.on("message", (data: Buffer) => {
      const d = decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (!d.ok) {
        report.violations.push(`an undecodable reply: ${d.error.message}`);
        return;
      }
      const p = d.message.payload;
      if (p.type === "error" && p.ref.startsWith("sentinel-")) {
        answered = Math.max(answered, Number(p.ref.slice(9)));
        wake?.();
        return;
      }
      const key = p.type === "error" ? `error:${p.code}` : p.type;
      report.replies[key] = (report.replies[key] ?? 0) + 1;
      if (p.type === "ack") report.violations.push(`acknowledged: ${JSON.stringify(p)}`);
      if (p.type === "welcome" && ++welcomes > 1)
        report.violations.push("a second welcome on one connection");
    });
    const waitFor = async (sentinel: number) => {
      const deadline = Date.now() + 30_000;
      while (!closed && answered < sentinel) {
        if (Date.now() > deadline) {
          report.violations.push(`no answer to sentinel ${sentinel} within 30 s`);
          ws.terminate();
          return;
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
    };
    ws.send(make.join());
    while (sent < frames && !closed) {
      for (let k = 0; k < WINDOW && sent < frames; k++) {
        const frame = make.next();
        ws.send(frame);
        sent++;
        report.frames++;
        report.bytes += frame.byteLength;
      }
      ws.send(make.sentinel(++sentinels));
      await waitFor(sentinels - AHEAD + 1);
    }
    if (closed) report.closes++;
    else {
      await waitFor(sentinels);
      ws.close();
    }
  }
}

function open(url: string, localAddress: string | undefined): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, localAddress ? { localAddress, family: 4 } : {});
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", () => resolve(undefined));
  });
}

export function generators(rand: () => number, model: ModelSpec, runId: string) {
  const int = (n: number) => Math.floor(rand() * n);
  const pickOf = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  let id = 0;
  const frame = (payload: Payload, recipient = "coordinator") =>
    encodeMessage({
      messageId: `f${++id}`,
      sender: "",
      recipient,
      timestamp: Date.now(),
      payload,
    });
  const client = { kind: "headless", adapter: "fuzz", softwareFallback: false, userAgent: "fuzz" };
  const join = (over: Partial<Extract<Payload, { type: "join" }>> = {}) =>
    frame({
      type: "join",
      runId,
      sessionToken: "",
      client,
      encodings: ["fp32"],
      protocolVersion: PROTOCOL_VERSION,
      ...over,
    });
  const layout = parameterLayout(model);
  const update = (
    values: (i: number, size: number) => number,
    over: Record<string, unknown> = {},
  ) =>
    frame({
      type: "gradientUpdate",
      gradientId: "g",
      gradients: layout.slots.map((slot, i) => ({
        shape: slot.shape,
        dtype: "float32",
        name: slot.name,
        data: Float32Array.from({ length: slot.size }, (_, k) => values(i, k)),
      })),
      loss: 0.5,
      timestamp: Date.now(),
      nodeId: "",
      batchId: "0:0",
      leaseId: 1 + int(2 ** 40),
      baseVersion: 0,
      sampleCount: 64,
      encoding: "fp32",
      kind: "gradient",
      innerSteps: 1,
      ...over,
    } as Payload);
  const small = () => (rand() - 0.5) * 1e-3;
  const traffic = [
    join(),
    frame({ type: "heartbeat", sentAt: Date.now(), samplesPerSecond: 100 }),
    frame({ type: "signal", payload: new Uint8Array(64) }, "s_someone"),
    frame({ type: "evaluation", leaseId: 7, version: 1, loss: 1.5, correct: 3, sample: "" }),
    update(small),
  ];
  const mutations = frameMutations(rand, traffic);
  const mutationKinds = Object.values(mutations);
  // Long strings within the frame limit (1 MiB for a small run), and a rare frame just over it,
  // which closes the connection (the fuzzer reconnects).
  const huge = "x".repeat(60_000);
  const hostile: Array<() => Uint8Array> = [
    () => join(), // a second join on a joined connection
    () => join({ protocolVersion: 65535 }),
    () => join({ runId: huge }),
    () => join({ sessionToken: huge, displayName: huge }),
    () => frame({ type: "leaseRequest", maxBatches: 2 ** 32 - 1 }),
    () => frame({ type: "heartbeat", sentAt: Number.MAX_SAFE_INTEGER, samplesPerSecond: 1e308 }),
    () =>
      frame(
        { type: "signal", payload: new Uint8Array(int(50) === 0 ? (1 << 20) + 1 : 16 << 10) },
        pickOf(["", "coordinator", "s_x", huge.slice(0, 4096)]),
      ),
    () =>
      frame({
        type: "evaluation",
        leaseId: Number.MAX_SAFE_INTEGER,
        version: Number.MAX_SAFE_INTEGER,
        loss: Number.NaN,
        correct: 2 ** 32 - 1,
        sample: huge,
      }),
    () => frame({ type: "parameters", version: Number.MAX_SAFE_INTEGER, tensors: [] }),
    () => update((i, k) => (i === 0 && k === 0 ? Number.NaN : small())),
    () =>
      update((_, k) =>
        k === 1 ? pickOf([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) : small(),
      ),
    () => update(() => 3e38),
    () => update(small, { sampleCount: pickOf([0, 1, 2 ** 32 - 1]) }),
    () => update(small, { baseVersion: pickOf([Number.MAX_SAFE_INTEGER, 1e9]) }),
    () => update(small, { leaseId: pickOf([0, Number.MAX_SAFE_INTEGER]) }),
    () => update(small, { innerSteps: pickOf([0, 2 ** 32 - 1]) }),
    () => update(small, { batchId: huge }),
    () => update(small, { loss: Number.NaN }),
    () => update(small, { gradients: [] }),
    () =>
      update(small, {
        gradients: layout.slots.map((slot) => {
          const extra = 1 + int(3);
          return {
            shape: [...slot.shape, extra],
            dtype: "float32",
            data: new Float32Array(slot.size * extra),
          };
        }),
      }),
    () =>
      update(small, {
        encoding: "int8",
        gradients: layout.slots.map((slot) => ({
          shape: slot.shape,
          dtype: "int8",
          data: new Int8Array(slot.size).fill(127),
          scale: pickOf([Number.NaN, -1, 0, 1e38]),
        })),
      }),
    () =>
      update(small, {
        gradients: layout.slots.map((slot) => ({
          shape: slot.shape,
          dtype: "int32",
          data: new Int32Array(slot.size),
        })),
      }),
  ];
  return {
    hostile,
    join: () => join(),
    sentinel: (n: number) =>
      encodeMessage({
        messageId: `sentinel-${n}`,
        sender: "",
        recipient: "coordinator",
        timestamp: Date.now(),
        payload: { type: "ack", ref: "", leaseId: 0, version: 0 },
      }),
    next: (): Uint8Array => {
      const r = rand();
      // A leave ends the session and the coordinator closes the connection: rare, so that most
      // frames are read on a joined connection.
      if (r < 0.001) return frame({ type: "leave", reason: huge });
      if (r < 0.4) return mutations.random!();
      if (r < 0.8) return pickOf(mutationKinds)();
      return pickOf(hostile)();
    },
  };
}
