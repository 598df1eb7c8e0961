// The contributor's training, off the UI thread: it acquires the GPU, keeps the connection to the
// coordinator, and trains on leased batches with the WGSL engine. It imports no UI code; the page
// talks to it only through the messages in worker-protocol.ts.
import { type DataSource, sha256Hex } from "@pangea/shared";
import {
  type Connection,
  Contributor,
  connect,
  fetchShard,
  type SocketLike,
} from "@pangea/shared/client";
import { measureHeldOut } from "@pangea/shaders/reference";
import { acquireDevice, WebGpuUnavailableError } from "@pangea/shaders/runtime";
import { GpuTrainer } from "@pangea/shaders/runtime";
import type { FromWorker, ToWorker } from "./worker-protocol.ts";
import { WorkerPeers } from "./worker-peers.ts";

const post = (m: FromWorker) => self.postMessage(m);
let connection: Connection | undefined;
let contributor: Contributor | undefined;
let batchesDone = 0;
let peers: WorkerPeers | undefined;

async function start(
  url: string,
  runId: string,
  displayName: string,
  withPeers: boolean,
): Promise<void> {
  let gpu: Awaited<ReturnType<typeof acquireDevice>>;
  try {
    gpu = await acquireDevice(navigator.gpu);
  } catch (e) {
    post({
      type: "unsupported",
      message: e instanceof WebGpuUnavailableError ? e.message : `WebGPU failed to start: ${e}`,
    });
    return;
  }
  post({
    type: "adapter",
    adapter: {
      description: gpu.adapter.description,
      softwareFallback: gpu.adapter.softwareFallback,
    },
  });
  gpu.device.lost.then((info) => {
    if (info.reason !== "destroyed")
      post({ type: "error", message: `the GPU was lost: ${info.message}` });
  });
  const c = new Contributor(new GpuTrainer(gpu, navigator.userAgent), {
    runId,
    displayName,
    prefetch: true,
    // Evaluation leases are measured with the CPU reference, as the coordinator measures them:
    // two sessions' reports are then the same numbers, whatever GPU each tab has.
    evaluate: measureHeldOut,
    loadShard: (source) => cachedShard(url, source),
    ...(withPeers
      ? {
          peers: (sendSignal: (to: string, payload: Uint8Array) => void) => {
            peers = new WorkerPeers(post, sendSignal);
            return peers;
          },
        }
      : {}),
    onMessage: (p) => {
      if (p.type === "welcome")
        post({
          type: "joined",
          runId: p.runId,
          runName: p.model.name,
          sessionId: p.sessionId,
          version: p.version,
        });
      if (p.type === "error" && p.ref === "" && p.code === "runNotActive")
        post({ type: "notice", message: p.message });
    },
    onWork: (r) => {
      batchesDone++;
      post({
        type: "work",
        loss: r.loss,
        samples: r.samples,
        ms: r.ms,
        batchesDone,
        samplesDone: c.samplesDone,
        samplesPerSecond: c.samplesPerSecond,
        acks: c.acks,
        refusals: c.refusals.length,
      });
    },
    onError: (e) => post({ type: "error", message: String(e instanceof Error ? e.message : e) }),
  });
  contributor = c;
  const address = runId ? `${url}/?run=${encodeURIComponent(runId)}` : url;
  connection = connect(address, c, {
    createSocket: (address) => new WebSocket(address) as unknown as SocketLike,
    onState: (state) =>
      post({ type: "connection", state, reconnects: Math.max(0, connection?.reconnects ?? 0) }),
  });
  connection.done.then(() => {
    if (c.finished) post({ type: "ended", message: "the run has ended; thank you" });
  });
}

/**
 * The run's dataset shard from the browser's Cache Storage when this origin fetched it before
 * (kept by hash, so every run on the same data shares one copy, and a copy that no longer
 * matches is fetched again), else from the coordinator. The contributor checks the hash again.
 */
async function cachedShard(url: string, source: DataSource): Promise<Uint8Array> {
  const key = new URL(`/__pangea/shards/${source.sha256}`, self.location.origin).toString();
  let cache: Cache | undefined;
  try {
    cache = await caches.open("pangea-datasets");
    const hit = await cache.match(key);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if (sha256Hex(bytes) === source.sha256) return bytes;
      await cache.delete(key);
    }
  } catch {
    cache = undefined; // No Cache Storage (a private window may refuse it): fetch every time.
  }
  const bytes = await fetchShard(url, source);
  if (cache && sha256Hex(bytes) === source.sha256)
    await cache.put(key, new Response(bytes as Uint8Array<ArrayBuffer>)).catch(() => {});
  return bytes;
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  switch (m.type) {
    case "start":
      if (!contributor) void start(m.url, m.runId, m.displayName, m.peers);
      return;
    case "peer.signal":
    case "peer.fetched":
      peers?.fromPage(m);
      return;
    case "pause":
      contributor?.pause();
      post({ type: "paused", paused: true });
      return;
    case "resume":
      contributor?.resume();
      post({ type: "paused", paused: false });
      return;
    case "duty":
      if (contributor) contributor.duty = Math.min(1, Math.max(0.1, m.value));
      return;
    case "leave":
      connection?.close();
      return;
  }
};
