// One run's Durable Object: the coordinator core for that run, on the object's SQLite storage.
// What differs from the Node server is only the adapter:
//   - WebSockets use the Hibernation API: `acceptWebSocket`, with the session id kept as the
//     socket's attachment, so that a woken object maps each open socket back to its session;
//   - the periodic tick (lease expiry, straggler deadlines, silent sessions) is an alarm, set
//     while anyone is connected;
//   - the run's HTTP API is the core's own Hono app (createApi), reached through the Worker,
//     creating the run included.
// After an eviction the constructor rebuilds everything from storage: the run at its last
// committed version, its sessions, and its open sockets. It first loads the datasets (the
// built-in shards from the static assets, and a brought one its run trains on from R2), inside
// blockConcurrencyWhile, so no event arrives before.
//
// The platform's limits, which the core checks when a run is created, so that a run that could
// not live here is refused with the reason rather than failing mid-run:
//   - a WebSocket message a Durable Object receives is at most 32 MiB (MAX_MESSAGE_BYTES);
//   - an isolate has 128 MB: a run may hold 48 MB (RUN_MEMORY_BYTES): its parameters, optimizer
//     state and gathered updates (runMemoryBytes), and, in what is left, one update in and one
//     parameter frame out per live lease (leaseAllowance: past it, lease requests wait);
//   - rows are under 2 MB: parameters and moments are stored in 1 MiB chunks (do-store.ts);
//   - CPU per event: the heaviest event is an evaluation of the held-out set (1,000 samples),
//     bounded by the model size these limits allow; `pnpm bench:coordinator` reports it.
import {
  admissionFromEnv,
  Coordinator,
  createApi,
  edgeAddress,
  isAdmin,
  type Peer,
  parseIceServers,
} from "@pangea/coordinator/core";
import { DurableObject } from "cloudflare:workers";
import { broughtDatasets, datasetNamed, edgeDatasets } from "./datasets.ts";
import { DoSqliteStore } from "./do-store.ts";
import type { LimitObject } from "./limits.ts";
import type { RunIndex } from "./run-index.ts";

export interface Env {
  RUNS: DurableObjectNamespace<RunObject>;
  INDEX: DurableObjectNamespace<RunIndex>;
  LIMITS: DurableObjectNamespace<LimitObject>;
  ASSETS?: Fetcher;
  /** Brought datasets (datasets.ts); without it, uploads are refused with the reason. */
  DATASETS?: R2Bucket;
  PANGEA_ADMIN_TOKEN?: string;
  /** Join limits per address, as on Node (see the README). */
  PANGEA_NEW_SESSIONS_PER_MINUTE?: string;
  PANGEA_SESSIONS_PER_ADDRESS?: string;
  /** Origins whose pages may call the API (comma-separated); none by default. */
  PANGEA_CORS_ORIGINS?: string;
  /** The largest file a brought dataset may come from (datasets.ts). */
  PANGEA_DATASET_MAX_BYTES?: string;
  /** The longest an event stream stays open (limits.ts). */
  PANGEA_STREAM_MAX_MS?: string;
}

const TICK_MS = 1000;

/** What a hibernating socket keeps: where it came from, and the session it speaks for. */
interface Attachment {
  address?: string;
  sessionId?: string;
  token?: string;
}
/** The largest WebSocket message a Durable Object receives (Cloudflare's documented limit). */
export const MAX_MESSAGE_BYTES = 32 << 20;
/**
 * What one run may hold in memory, its updates in flight included (Coordinator.leaseAllowance):
 * well inside an isolate's 128 MB, beside MNIST's 11 MB and the runtime's own.
 */
export const RUN_MEMORY_BYTES = 48e6;
/** Set by the Worker (and only by it) on the request that creates this object's run. */
export const RUN_ID_HEADER = "x-pangea-run-id";

export class RunObject extends DurableObject<Env> {
  readonly store: DoSqliteStore;
  // Set in the constructor's blockConcurrencyWhile, which runs before any event is delivered.
  coordinator!: Coordinator;
  private api!: ReturnType<typeof createApi>;
  private readonly peers = new WeakMap<WebSocket, Peer>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Group commit (do-store.ts): a moment's versions are written once, the newest snapshot.
    this.store = new DoSqliteStore(ctx.storage.sql, {
      schedule: (flush) => setTimeout(flush, 0),
      transaction: (fn) => ctx.storage.transactionSync(fn),
      // What was rolled back was never announced (its sends wait for it): restart from storage.
      failed: (e) => ctx.abort(`a write failed: ${e instanceof Error ? e.message : String(e)}`),
    });
    ctx.blockConcurrencyWhile(async () => {
      // The core resumes its run synchronously: a brought dataset it trains on is read first.
      const datasets = {
        ...(await edgeDatasets(env.ASSETS)),
        ...(await broughtDatasets(
          env.DATASETS,
          this.store.listRuns().map((r) => r.config.dataset),
        )),
      };
      this.coordinator = new Coordinator(
        this.store,
        { now: () => Date.now() },
        {
          datasets,
          maxMessageBytes: MAX_MESSAGE_BYTES,
          runMemoryBytes: RUN_MEMORY_BYTES,
          admission: admissionFromEnv(env as unknown as Record<string, unknown>),
          iceServers: edgeIceServers(env as unknown as Record<string, unknown>),
          commits: this.store,
        },
      );
      for (const ws of ctx.getWebSockets()) {
        const attached = ws.deserializeAttachment() as Attachment | null;
        const peer = this.peer(ws, attached?.address);
        if (attached?.sessionId) this.coordinator.attach(peer, attached.sessionId, attached.token);
        else this.coordinator.connect(peer);
      }
      this.api = createApi(this.coordinator, {
        adminToken: env.PANGEA_ADMIN_TOKEN ?? "",
        startedAt: Date.now(),
        // The Worker names a new run after this object (see worker.ts).
        runIdFor: (request) => request.headers.get(RUN_ID_HEADER) ?? undefined,
        addressOf: edgeAddress,
      });
    });
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/ws") {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket")
        return new Response("expected a WebSocket upgrade", { status: 426 });
      const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
      this.ctx.acceptWebSocket(server);
      // The client's address as Cloudflare gives it to the Worker (which passes the request on
      // unchanged); join limits count per address.
      const address = request.headers.get("cf-connecting-ip") ?? "unknown";
      server.serializeAttachment({ address } satisfies Attachment);
      this.coordinator.connect(this.peer(server, address));
      await this.keepTicking();
      return new Response(null, { status: 101, webSocket: client });
    }
    // Creating the run: a brought dataset it names is read from R2 first. Only for the admin,
    // whose request the API then checks and bounds: a stranger's body is not read twice.
    if (
      url.pathname === "/api/runs" &&
      request.method === "POST" &&
      isAdmin(request.headers.get("authorization") ?? undefined, this.env.PANGEA_ADMIN_TOKEN ?? "")
    ) {
      const name = await datasetNamed(request.clone());
      const found = await broughtDatasets(this.env.DATASETS, name ? [name] : []);
      for (const [n, source] of Object.entries(found)) this.coordinator.addDataset(n, source);
    }
    const response = await this.api.fetch(request);
    // An answer leaves after what its request wrote (the output gate then holds it until durable).
    this.store.flush();
    return response;
  }

  async webSocketMessage(ws: WebSocket, message: ArrayBuffer | string): Promise<void> {
    const peer = this.peer(ws);
    if (typeof message === "string") {
      peer.close(1003, "frames are binary Cap'n Proto messages");
      this.coordinator.disconnect(peer);
      return;
    }
    this.coordinator.receive(peer, new Uint8Array(message));
    await this.keepTicking();
  }

  async webSocketClose(ws: WebSocket): Promise<void> {
    this.coordinator.disconnect(this.peer(ws));
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    this.coordinator.disconnect(this.peer(ws));
  }

  async alarm(): Promise<void> {
    this.alarmSet = false;
    this.coordinator.tick();
    await this.keepTicking();
  }

  /**
   * Known to be set since this object last woke: every message would otherwise list every socket
   * and read the alarm (5% of a busy run's time). A woken object knows nothing and looks.
   */
  private alarmSet = false;

  private async keepTicking(): Promise<void> {
    if (this.alarmSet || this.ctx.getWebSockets().length === 0) return;
    if ((await this.ctx.storage.getAlarm()) === null)
      await this.ctx.storage.setAlarm(Date.now() + TICK_MS);
    this.alarmSet = true;
  }

  private peer(ws: WebSocket, address?: string): Peer {
    let peer = this.peers.get(ws);
    if (!peer) {
      peer = {
        send: (frame) => ws.send(frame),
        close: (code, reason) => ws.close(code, reason),
        // Not exposed by the runtime: the platform buffers, and a slow socket is its concern.
        bufferedAmount: () => 0,
        address,
        // The token too: a woken object has no sessions in memory and recalls them by token.
        identify: (sessionId, token) =>
          ws.serializeAttachment({ address, sessionId, token } satisfies Attachment),
      };
      this.peers.set(ws, peer);
    }
    return peer;
  }
}

/** PANGEA_ICE_SERVERS as a var or secret; a bad value is logged and WebRTC goes without. */
function edgeIceServers(env: Record<string, unknown>) {
  const value = env.PANGEA_ICE_SERVERS;
  try {
    return parseIceServers(typeof value === "string" ? value : undefined);
  } catch (e) {
    console.error(`edge: ${(e as Error).message}; no STUN/TURN servers`);
    return [];
  }
}
