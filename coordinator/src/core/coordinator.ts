// The coordinator: every run, every connected session, and the routing between them. A runtime
// adapter hands it connections (Peer), frames and a periodic tick; it never throws back at the
// adapter: a bad frame, an unknown run or a bug in one handler becomes an error message to that
// peer and changes nothing else.
import {
  decodeMessage,
  encodeMessage,
  type IceServer,
  type Payload,
  PROTOCOL_VERSION,
  parameterLayout,
  sha256Hex,
  type TrainingConfig,
  type WireMessage,
} from "@pangea/shared";
import {
  AddressBook,
  type AdmissionLimits,
  DEFAULT_ADMISSION,
  MAX_SIGNAL_BYTES,
  SIGNAL_BURST,
  SIGNALS_PER_SECOND,
  TokenBucket,
} from "./admission.ts";
import { type DatasetSources, hasDataset, loadDataset, unavailable } from "./datasets.ts";
import { type EvaluationResult, type Evaluator, slicedEvaluator } from "./evaluation.ts";
import type { Clock, Peer, RunRecord, Store } from "./ports.ts";
import { COPY_BASES, type Outgoing, Run } from "./run.ts";
import {
  type RunConfig,
  RunConfigError,
  type RunConfigInput,
  resolveRunConfig,
} from "./run-config.ts";
import { errorPayload } from "./validate.ts";

/** Sessions are asked to send a heartbeat this often; one silent for 3× this is dropped. */
export const HEARTBEAT_MS = 10_000;
/** A connection that has not joined within this long is closed: it holds a socket for nothing. */
export const JOIN_TIMEOUT_MS = 30_000;
/**
 * A session disconnected for this long is forgotten from memory (its row stays in the Store,
 * with its token, counts and quarantine, and a join with its token brings it back).
 */
export const FORGET_AFTER_MS = 10 * 60_000;
/** A peer with more than this queued gets no new lease (and so no parameters) until it drains. */
const BACKPRESSURE_BYTES = 8 * 1024 * 1024;
/** Room in a frame beyond its fp32 tensors (ids, shapes, the Cap'n Proto framing). */
const FRAME_OVERHEAD = 64 << 10;
/** The largest frame a run with this many parameters sends or receives. */
const frameBytes = (parameterCount: number) => parameterCount * 4 + FRAME_OVERHEAD;

/** What a runtime adapter tells the core about itself. */
export interface CoordinatorOptions {
  /** The datasets this runtime can load (beyond the built-in synthetic blobs). */
  datasets?: DatasetSources;
  /**
   * The largest WebSocket message the platform carries. A run whose parameters would not fit
   * one frame is refused at creation, rather than failing mid-run.
   */
  maxMessageBytes?: number;
  /** The memory one run may hold (runMemoryBytes); where the platform caps it (the edge). */
  runMemoryBytes?: number;
  /** Per-address limits on joining; DEFAULT_ADMISSION where absent. */
  admission?: Partial<AdmissionLimits>;
  /**
   * Runs a version's evaluation (held-out loss, a text sample) away from the commit path: a
   * worker thread on Node; by default a step per turn of the event loop (evaluation.ts).
   */
  evaluator?: Evaluator;
  /** STUN/TURN servers for WebRTC between sessions (PANGEA_ICE_SERVERS); none by default. */
  iceServers?: IceServer[];
  /**
   * Group commit (Node's SqliteStore, the edge's DoSqliteStore in a run object): the Store makes
   * the writes of many events durable together, a moment later; everything sent meanwhile waits
   * until they are, so that nothing is announced before it is on disk. Absent: every write is
   * durable when it returns (or, in a Durable Object, its output gate holds what is sent after).
   */
  commits?: CommitGate;
}

/** See CoordinatorOptions.commits. */
export interface CommitGate {
  /** Writes wait to become durable. */
  readonly pending: boolean;
  /** Calls `fn` once the writes made before this call are durable; calls come in order. */
  whenDurable(fn: () => void): void;
}

/** Parameter-sized float32 buffers a run holds besides the updates it gathers: the parameters,
 * two optimizer moments, their spares the next step writes into, the step, the aggregate
 * (float64, two) and the encoded parameter frame. */
const RESIDENT_COPIES = 10;

/**
 * About what a run holds in memory: its parameter-sized buffers, the updates a version gathers
 * before it closes, and with redundancy the parameters of the versions replicas may start from
 * (COPY_BASES). (Redundancy's first copies, held until their replica arrives, are not counted.)
 * The dataset is shared by every run that names it and is not counted either.
 */
export function runMemoryBytes(
  config: RunConfig,
  parameterCount = parameterLayout(config.model).size,
): number {
  const s = config.strategy;
  const gathered = s.kind === "asynchronous" ? s.buffer : s.targetUpdates;
  const bases = config.redundancy > 0 ? COPY_BASES : 0;
  return parameterCount * 4 * (RESIDENT_COPIES + gathered + bases);
}

interface Session {
  id: string;
  token: string;
  runId: string;
  peer: Peer | undefined;
  /** The newest parameter version this session's connection was sent (or a peer will send). */
  knownVersion: number;
  /** It said it can fetch and serve parameter frames over WebRTC (Join.peers). */
  peers: boolean;
  /** The peers its live leases named for a version's frame, until it arrives or falls back. */
  fromPeers: Array<{ peer: string; version: number; bytes: number }>;
}

/** One open connection: the address it came from, and the one session it may speak for. */
interface Connection {
  address: string;
  openedAt: number;
  session: Session | undefined;
}

/** Counters for /metrics, since the process started. */
export interface CoordinatorCounters {
  framesIn: number;
  framesRefused: number;
  bytesIn: number;
  bytesOut: number;
  /** Lease requests deferred because the peer had too much queued (backpressure). */
  leasesDeferred: number;
  /** Parameter frames sent with leases (pulled by sessions that were behind). */
  parameterFrames: number;
  /** Joins refused: a second join on a connection, or an address over its limits. */
  joinsRefused: number;
  /** Signals relayed, and refused (not introduced, too large, too many). */
  signalsRelayed: number;
  signalsRefused: number;
  /** Parameter frames a lease sent to a peer for instead of carrying them (Run config `peers`). */
  peerParameterFrames: number;
  /** Of those, frames the receiver then asked the coordinator for: by PeerFailure. */
  peerFallbacks: Record<string, number>;
  /** Sessions struck for serving parameter bytes that did not match the frame's hash. */
  peerStrikes: number;
}

export class Coordinator {
  readonly runs = new Map<string, Run>();
  private readonly sessions = new Map<string, Session>();
  private readonly byToken = new Map<string, Session>();
  private readonly peers = new Map<Peer, Connection>();
  private readonly addresses: AddressBook;
  /** Who each session may signal: sessions the coordinator introduced it to. */
  private readonly introduced = new Map<string, Set<string>>();
  private readonly signalBuckets = new Map<string, TokenBucket>();
  private messageCount = 0;
  readonly counters: CoordinatorCounters = {
    framesIn: 0,
    framesRefused: 0,
    bytesIn: 0,
    bytesOut: 0,
    leasesDeferred: 0,
    parameterFrames: 0,
    joinsRefused: 0,
    signalsRelayed: 0,
    signalsRefused: 0,
    peerParameterFrames: 0,
    peerFallbacks: {},
    peerStrikes: 0,
  };
  /** Who waits for each run's next change (the dashboard's event streams). */
  private readonly watchers = new Map<string, Set<() => void>>();
  /** The current parameters of each run, encoded once per version and sent to whoever needs them. */
  private readonly parameterFrames = new Map<
    string,
    { version: number; frame: Uint8Array; sha256?: string }
  >();
  /** An older version's parameters, for evaluation leases on it (the run moved on since). */
  private readonly heldOutFrames = new Map<string, { version: number; frame: Uint8Array }>();

  constructor(
    readonly store: Store,
    readonly clock: Clock,
    private readonly options: CoordinatorOptions = {},
  ) {
    this.addresses = new AddressBook({ ...DEFAULT_ADMISSION, ...options.admission });
    // Every run resumes at its last committed version. Its sessions stay in the Store until a
    // tab comes back with its token (resume): a restart does not load every session ever seen.
    const now = clock.now();
    for (const record of store.listRuns()) {
      const snapshot = store.loadRun(record.id);
      if (!snapshot) continue;
      let data: ReturnType<typeof loadDataset>;
      try {
        data = loadDataset(record.config.dataset, record.config.model, this.datasets);
      } catch (e) {
        // Kept in the Store, not served: the operator sees why, and nothing else stops.
        console.error(`coordinator: run ${record.id} not resumed: ${(e as Error).message}`);
        continue;
      }
      const run = Run.load(snapshot, store, now, data);
      this.runs.set(record.id, run);
    }
  }

  // --- runs (the HTTP API calls these) ------------------------------------------------------

  /** `id`: where the runtime names runs itself (the edge: a run is its Durable Object's name). */
  /** `initial`: the parameters to start from (a checkpoint's), in the model's layout. */
  createRun(
    input: RunConfigInput,
    start = true,
    id: string = randomId("run"),
    initial?: Float32Array,
  ): Run {
    let config: RunConfig;
    try {
      config = resolveRunConfig(input);
    } catch (e) {
      // Said together with the config's own problems: whether the dataset exists here.
      const name = input.dataset;
      if (
        e instanceof RunConfigError &&
        typeof name === "string" &&
        !hasDataset(name, this.datasets)
      )
        throw new RunConfigError([...e.problems, unavailable(name)]);
      throw e;
    }
    const problems = this.platformProblems(config);
    if (problems.length > 0) throw new RunConfigError(problems);
    const data = loadDataset(config.dataset, config.model, this.datasets);
    const now = this.clock.now();
    if (this.runs.has(id)) throw new Error(`run ${id} exists`);
    const run = Run.create(id, config, this.store, now, data, initial);
    this.runs.set(run.id, run);
    if (start) this.route(run, run.setState("running", now));
    this.changed(run.id);
    return run;
  }

  setRunState(id: string, state: "running" | "paused" | "stopped"): Run {
    const run = this.runs.get(id);
    if (!run) throw new Error(`no run ${id}`);
    this.route(run, run.setState(state, this.clock.now()));
    this.changed(run.id);
    return run;
  }

  listRuns(): RunRecord[] {
    return [...this.runs.values()].map((r) => r.record);
  }

  /** The largest frame a session may send: the biggest run's fp32 update and some room. */
  maxFrameBytes(): number {
    let largest = 0;
    for (const run of this.runs.values()) largest = Math.max(largest, run.parameters.length);
    const needed = Math.max(1 << 20, frameBytes(largest));
    return Math.min(needed, this.options.maxMessageBytes ?? needed);
  }

  /** Why this runtime could not carry the run, or nothing. */
  private platformProblems(config: RunConfig): string[] {
    const problems: string[] = [];
    const { maxMessageBytes, runMemoryBytes: budget } = this.options;
    const frame = frameBytes(parameterLayout(config.model).size);
    if (maxMessageBytes !== undefined && frame > maxMessageBytes)
      problems.push(
        `model: its parameters make ${frame}-byte frames, over this coordinator's ${maxMessageBytes}-byte message limit`,
      );
    const memory = runMemoryBytes(config);
    if (budget !== undefined && memory > budget)
      problems.push(
        `model: the run would hold about ${mb(memory)} MB (parameters, optimizer state and the updates a version gathers), over this coordinator's ${mb(budget)} MB per run`,
      );
    return problems;
  }

  /**
   * How many leases a run may have out at once: unbounded, unless the runtime caps a run's
   * memory, in which case what runMemoryBytes leaves of it, at one update arriving and one
   * parameter frame leaving per lease.
   */
  leaseAllowance(run: Run): number {
    const budget = this.options.runMemoryBytes;
    if (budget === undefined) return Number.POSITIVE_INFINITY;
    const count = run.layout.size;
    const perLease = 2 * frameBytes(count);
    return Math.max(1, Math.floor((budget - runMemoryBytes(run.config, count)) / perLease));
  }

  /** The datasets runs here may name: the runtime's, and those brought since (addDataset). */
  private get datasets(): DatasetSources {
    this.sources ??= { ...this.options.datasets };
    return this.sources;
  }
  private sources?: Record<string, () => Uint8Array>;

  /** A dataset brought while running (an upload): runs may name it from now on. */
  addDataset(name: string, source: () => Uint8Array): void {
    (this.datasets as Record<string, () => Uint8Array>)[name] = source;
  }

  // --- connections --------------------------------------------------------------------------

  connect(peer: Peer): void {
    this.peers.set(peer, {
      address: peer.address ?? "unknown",
      openedAt: this.clock.now(),
      session: undefined,
    });
  }

  /**
   * A connection that outlived this Coordinator object (a Durable Object woken from hibernation
   * with its WebSockets still open) speaks for its session again, without a new join.
   */
  attach(peer: Peer, sessionId: string, token?: string): void {
    this.connect(peer);
    const session = this.sessions.get(sessionId) ?? (token ? this.recall(token) : undefined);
    if (!session || session.id !== sessionId) return;
    this.bind(session, peer);
    const run = this.runs.get(session.runId);
    const stats = run?.sessions.get(sessionId);
    if (run && stats)
      run.join(sessionId, stats.client, this.clock.now(), stats.evaluates, stats.name);
  }

  disconnect(peer: Peer): void {
    const session = this.peers.get(peer)?.session;
    if (session && session.peer === peer) {
      this.unbind(session);
      this.runs.get(session.runId)?.parameterSources.forget(session.id);
      this.runs.get(session.runId)?.leave(session.id, this.clock.now());
      this.saveSession(session);
      this.changed(session.runId);
    }
    this.peers.delete(peer);
  }

  /** The session now speaks through this connection (and through no other). */
  private bind(session: Session, peer: Peer): void {
    if (session.peer === peer) return;
    if (session.peer) {
      const old = session.peer;
      this.unbind(session);
      this.peers.delete(old);
      this.closePeer(old, 4001, "replaced by a newer connection of this session");
    }
    const conn = this.peers.get(peer);
    if (!conn) return;
    conn.session = session;
    session.peer = peer;
    this.addresses.opened(conn.address);
  }

  private unbind(session: Session): void {
    const peer = session.peer;
    if (!peer) return;
    const conn = this.peers.get(peer);
    if (conn?.session === session) {
      conn.session = undefined;
      this.addresses.closed(conn.address);
    }
    session.peer = undefined;
  }

  /** A session that is not in memory, brought back from the Store by its token. */
  private recall(token: string): Session | undefined {
    const known = this.byToken.get(token);
    if (known) return known;
    const record = this.store.sessionByToken(token);
    const run = record && this.runs.get(record.runId);
    if (!record || !run) return undefined;
    const session: Session = {
      id: record.stats.id,
      token,
      runId: run.id,
      peer: undefined,
      knownVersion: -1,
      peers: false,
      fromPeers: [],
    };
    this.sessions.set(session.id, session);
    this.byToken.set(token, session);
    run.sessions.set(session.id, { ...record.stats, connected: false });
    return session;
  }

  /** Drops a long-disconnected session from memory; the Store keeps it. */
  private forget(run: Run, sessionId: string): void {
    const session = this.sessions.get(sessionId);
    if (session?.peer) return;
    run.sessions.delete(sessionId);
    this.sessions.delete(sessionId);
    if (session) this.byToken.delete(session.token);
    this.signalBuckets.delete(sessionId);
    for (const other of this.introduced.get(sessionId) ?? [])
      this.introduced.get(other)?.delete(sessionId);
    this.introduced.delete(sessionId);
  }

  /**
   * Lets two sessions of one run signal each other (WebRTC offers, answers, candidates). The
   * relay carries nothing between sessions that were not introduced.
   */
  introduce(a: string, b: string): boolean {
    const sa = this.sessions.get(a);
    const sb = this.sessions.get(b);
    if (!sa || !sb || a === b || sa.runId !== sb.runId) return false;
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const set = this.introduced.get(x) ?? new Set();
      set.add(y);
      this.introduced.set(x, set);
    }
    return true;
  }

  /** How many sessions (connected or not) are held in memory: bounded by forgetting. */
  get sessionsInMemory(): number {
    return this.sessions.size;
  }

  /**
   * Resolves at the run's next change: a committed version, a state change, a session joining
   * or leaving. Event streams wait on this instead of polling.
   */
  nextChange(runId: string): Promise<void> {
    return new Promise((resolve) => {
      const set = this.watchers.get(runId) ?? new Set();
      this.watchers.set(runId, set);
      set.add(resolve);
    });
  }

  /** `runId` "*" waits for a change to any run (the dashboard's runs table). */
  private changed(runId: string): void {
    for (const key of [runId, "*"]) {
      const set = this.watchers.get(key);
      if (!set) continue;
      this.watchers.delete(key);
      for (const resolve of set) resolve();
    }
  }

  /** One frame from a peer. Never throws. */
  receive(peer: Peer, frame: Uint8Array): void {
    this.counters.framesIn++;
    this.counters.bytesIn += frame.byteLength;
    this.countTraffic(peer, frame.byteLength, "in");
    let ref = "";
    try {
      const decoded = decodeMessage(frame, { maxFrameBytes: this.maxFrameBytes() });
      if (!decoded.ok) {
        this.counters.framesRefused++;
        const code = decoded.error.code === "frame-too-large" ? "frameTooLarge" : "malformedFrame";
        this.reply(peer, errorPayload(code, decoded.error.message));
        return;
      }
      ref = decoded.message.messageId;
      this.handle(peer, decoded.message);
    } catch (e) {
      // A bug, not the peer's fault: say so to this peer only, and keep serving everyone.
      console.error("coordinator: internal error handling a frame", e);
      this.reply(peer, errorPayload("internal", "the coordinator failed on this message", { ref }));
    }
  }

  /** Before the process stops: every run commits what it can, and says so to its sessions. */
  shutdown(): void {
    const now = this.clock.now();
    for (const run of this.runs.values()) {
      try {
        if (run.active) this.route(run, run.flush(now));
      } catch (e) {
        console.error(`coordinator: flushing run ${run.id} failed`, e);
      }
    }
  }

  /**
   * Periodic work: lease expiry, straggler deadlines, silent sessions (marked disconnected after
   * 3 heartbeats, forgotten from memory after FORGET_AFTER_MS), connections that never joined.
   */
  tick(): void {
    const now = this.clock.now();
    for (const [peer, conn] of this.peers) {
      if (conn.session || now - conn.openedAt <= JOIN_TIMEOUT_MS) continue;
      this.peers.delete(peer);
      this.closePeer(peer, 4002, "no join");
    }
    this.addresses.prune(now);
    for (const run of this.runs.values()) {
      try {
        this.route(run, run.tick(now));
        for (const s of [...run.sessions.values()]) {
          const session = this.sessions.get(s.id);
          if (s.connected && (!session?.peer || now - s.lastSeen > 3 * HEARTBEAT_MS)) {
            const peer = session?.peer;
            if (peer) {
              this.closePeer(peer, 4000, "no heartbeat");
              this.disconnect(peer);
            } else {
              // Connected with no connection: nothing will ever report it gone but this.
              run.leave(s.id, now);
              this.changed(run.id);
            }
          } else if (!s.connected && now - s.lastSeen > FORGET_AFTER_MS) {
            this.forget(run, s.id);
          }
        }
      } catch (e) {
        console.error(`coordinator: tick failed for run ${run.id}`, e);
      }
    }
  }

  // --- messages -----------------------------------------------------------------------------

  private handle(peer: Peer, m: WireMessage): void {
    const p = m.payload;
    if (p.type === "join") {
      this.join(peer, m.messageId, p);
      return;
    }
    const session = this.peers.get(peer)?.session;
    if (!session) {
      this.reply(
        peer,
        errorPayload("notJoined", "send a join message first", { ref: m.messageId }),
      );
      return;
    }
    const run = this.runs.get(session.runId)!;
    const now = this.clock.now();
    run.seen(session.id, now);
    switch (p.type) {
      case "leaseRequest": {
        if (peer.bufferedAmount() > BACKPRESSURE_BYTES) {
          this.counters.leasesDeferred++;
          this.reply(
            peer,
            errorPayload("rateLimited", "this connection is behind on reading; ask again soon", {
              ref: m.messageId,
              retryAfterMs: 500,
            }),
          );
          return;
        }
        if (run.scheduler.liveCount >= this.leaseAllowance(run)) {
          // Each live lease may come back as an update the platform holds until it is handled:
          // where memory is capped, leases are too, and the rest wait their turn.
          this.counters.leasesDeferred++;
          this.reply(
            peer,
            errorPayload("rateLimited", "the run has as many updates in flight as it can hold", {
              ref: m.messageId,
              retryAfterMs: 250,
            }),
          );
          return;
        }
        const answer = run.requestLease(session.id, now);
        if (answer.type === "error") answer.ref = m.messageId;
        // An evaluation lease measures one version, which the session must hold exactly.
        else if (answer.type === "lease" && answer.heldOut) {
          if (session.knownVersion !== answer.baseVersion)
            this.sendHeldOutParameters(peer, session, run);
        }
        // So does a copy of a batch from a version that has closed since (redundancy).
        else if (answer.type === "lease" && answer.baseVersion < run.record.version) {
          if (session.knownVersion !== answer.baseVersion)
            this.sendCopyParameters(peer, session, run, answer.baseVersion);
        }
        // Parameters are pulled, not broadcast: a session that is behind gets the current ones
        // just before the lease that will use them. A version then costs one parameter frame
        // per lease, not one per connected tab.
        else if (answer.type === "lease" && session.knownVersion < run.record.version)
          this.provideParameters(peer, session, run, answer);
        this.reply(peer, answer);
        return;
      }
      case "parametersRequest": {
        this.fallBack(peer, session, run, p, m.messageId);
        return;
      }
      case "evaluation": {
        this.route(run, run.report(session.id, m.messageId, p, now));
        this.changed(run.id);
        return;
      }
      case "gradientUpdate": {
        const version = run.record.version;
        const stats = run.sessions.get(session.id);
        const refusedBefore = stats?.updatesRefused ?? 0;
        const out = run.submit(session.id, m.messageId, p, now);
        // Only an update the run took says what its sender holds: a refused one (a forged base
        // version, a wrong shape) makes it no holder and credits no peer.
        const named = session.fromPeers.find((n) => n.version === p.baseVersion);
        if (named) session.fromPeers = session.fromPeers.filter((n) => n !== named);
        if (stats && stats.updatesRefused === refusedBefore) {
          // Trained from the current version: it holds that frame, and may serve it to peers.
          if (session.peers && p.baseVersion === version)
            run.parameterSources.hold(session.id, p.baseVersion);
          if (named) {
            // It trained on the frame the peer sent (a fallback would have cleared the naming).
            run.parameterSources.delivered(named.peer, session.id);
            this.peerTraffic(run, named.peer, session.id, named.bytes);
          }
        }
        this.route(run, out);
        return;
      }
      case "reducedPart": {
        this.route(run, run.reducedPart(session.id, m.messageId, p, now));
        return;
      }
      case "heartbeat":
        this.reply(peer, { type: "heartbeat", sentAt: p.sentAt, samplesPerSecond: 0 });
        return;
      case "leave":
        this.disconnect(peer);
        this.closePeer(peer, 1000, "left");
        return;
      case "signal": {
        const refusal = this.checkSignal(
          session,
          m.recipient,
          p.payload.byteLength,
          now,
          m.messageId,
        );
        const to = this.sessions.get(m.recipient);
        if (refusal || !to?.peer) {
          this.counters.signalsRefused++;
          this.reply(
            peer,
            refusal ??
              errorPayload("notIntroduced", `session ${m.recipient} is not connected`, {
                ref: m.messageId,
              }),
          );
          return;
        }
        this.counters.signalsRelayed++;
        this.send(to.peer, { type: "signal", payload: p.payload }, session.id);
        return;
      }
      default: {
        this.reply(
          peer,
          errorPayload("unsupportedMessage", `a worker does not send ${p.type} messages`, {
            ref: m.messageId,
          }),
        );
        return;
      }
    }
  }

  /** Why a signal from `from` to `to` is not relayed, or nothing. */
  private checkSignal(
    from: Session,
    to: string,
    bytes: number,
    now: number,
    ref: string,
  ): Payload | undefined {
    if (!this.introduced.get(from.id)?.has(to))
      return errorPayload("notIntroduced", `the coordinator has not introduced you to ${to}`, {
        ref,
      });
    if (bytes > MAX_SIGNAL_BYTES)
      return errorPayload(
        "frameTooLarge",
        `a signal carries at most ${MAX_SIGNAL_BYTES} bytes, not ${bytes}`,
        { ref },
      );
    let bucket = this.signalBuckets.get(from.id);
    if (!bucket) {
      bucket = new TokenBucket(SIGNAL_BURST, SIGNALS_PER_SECOND / 1000, now);
      this.signalBuckets.set(from.id, bucket);
    }
    const taken = bucket.take(now);
    if (!taken.ok)
      return errorPayload(
        "rateLimited",
        `at most ${SIGNALS_PER_SECOND} signals a second (a burst of ${SIGNAL_BURST})`,
        { ref, retryAfterMs: taken.retryAfterMs },
      );
    return undefined;
  }

  private join(peer: Peer, ref: string, p: Extract<Payload, { type: "join" }>): void {
    const conn = this.peers.get(peer);
    if (!conn) return;
    if (conn.session) {
      this.counters.joinsRefused++;
      this.reply(
        peer,
        // Short on purpose: a refusal costs no more than the join it answers.
        errorPayload("alreadyJoined", "this connection has joined", { ref }),
      );
      return;
    }
    if (p.protocolVersion !== PROTOCOL_VERSION) {
      this.reply(
        peer,
        errorPayload("protocolVersion", `this coordinator speaks protocol ${PROTOCOL_VERSION}`, {
          ref,
        }),
      );
      return;
    }
    const run = p.runId ? this.runs.get(p.runId) : this.pickRun();
    if (!run) {
      this.reply(
        peer,
        errorPayload("unknownRun", p.runId ? `no run ${p.runId}` : "no run is active", {
          ref,
          retryAfterMs: p.runId ? 0 : 5000,
        }),
      );
      return;
    }
    const now = this.clock.now();
    // A known token resumes its session (same id, same stats); anything else starts a new one,
    // within the address's limits.
    let session = p.sessionToken ? this.recall(p.sessionToken) : undefined;
    if (session && session.runId !== run.id) session = undefined;
    const refusal = session
      ? session.peer || this.addresses.mayOpen(conn.address)
        ? undefined
        : {
            message: `this address has ${this.addresses.limits.sessionsPerAddress} sessions open, the most it may`,
            retryAfterMs: 10_000,
          }
      : this.addresses.admitNew(conn.address, now);
    if (refusal) {
      this.counters.joinsRefused++;
      this.reply(
        peer,
        errorPayload("rateLimited", refusal.message, { ref, retryAfterMs: refusal.retryAfterMs }),
      );
      return;
    }
    if (!session) {
      session = {
        id: randomId("s"),
        token: randomId("t", 16),
        runId: run.id,
        peer: undefined,
        knownVersion: -1,
        peers: false,
        fromPeers: [],
      };
      this.sessions.set(session.id, session);
      this.byToken.set(session.token, session);
    }
    this.bind(session, peer);
    // The parameters are pulled with the first lease, not pushed in the welcome: a join that
    // never asks for work costs the coordinator a small frame, not the whole model.
    session.knownVersion = -1;
    session.peers = p.peers === true;
    session.fromPeers = [];
    peer.identify?.(session.id, session.token);
    run.join(session.id, p.client, now, p.evaluates === true, p.displayName ?? "");
    this.saveSession(session);
    this.changed(run.id);
    this.send(peer, {
      type: "welcome",
      runId: run.id,
      sessionId: session.id,
      sessionToken: session.token,
      model: run.config.model,
      version: run.record.version,
      parameters: [],
      training: trainingConfig(run.config),
      heartbeatMs: HEARTBEAT_MS,
      maxFrameBytes: this.maxFrameBytes(),
      data: {
        name: run.data.name,
        url: `/api/runs/${encodeURIComponent(run.id)}/shard`,
        sha256: run.data.sha256,
        bytes: run.data.bytes.byteLength,
      },
      ...(run.config.peers && session.peers && this.options.iceServers?.length
        ? { iceServers: this.options.iceServers }
        : {}),
    });
    if (!run.active)
      this.reply(
        peer,
        errorPayload("runNotActive", `the run is ${run.record.state}`, {
          ref,
          retryAfterMs: run.record.state === "paused" ? 2000 : 0,
        }),
      );
  }

  /** The most recently created running run. */
  private pickRun(): Run | undefined {
    return [...this.runs.values()]
      .filter((r) => r.active)
      .sort((a, b) => b.record.createdAt - a.record.createdAt)[0];
  }

  private route(run: Run, out: Outgoing[]): void {
    this.startEvaluation(run);
    if (out.length > 0) this.changed(run.id);
    for (const o of out) {
      // A quarantine is written down at once, so that a restart does not lift it.
      if (o.to !== "*" && o.payload.type === "error" && o.payload.code === "quarantined") {
        const session = this.sessions.get(o.to);
        if (session) this.saveSession(session);
      }
      if (o.to === "*") {
        let frame: Uint8Array | undefined;
        for (const s of run.sessions.values()) {
          const peer = this.sessions.get(s.id)?.peer;
          if (!peer || s.quarantined) continue;
          frame ??= this.encode(o.payload, "");
          this.transmit(peer, frame);
        }
      } else {
        // A group's members fetch parts from each other: they may signal each other.
        if (o.payload.type === "reducePlan")
          for (const m of o.payload.members)
            if (m.session !== o.to) this.introduce(o.to, m.session);
        const peer = this.sessions.get(o.to)?.peer;
        if (peer) this.send(peer, o.payload);
      }
    }
  }

  /** Starts the run's due evaluation, if any; its result is routed like any other event. */
  private startEvaluation(run: Run): void {
    const job = run.takeEvaluation(this.clock.now());
    if (!job) return;
    const finish = (result: EvaluationResult | Error) => {
      if (result instanceof Error)
        console.error(`coordinator: evaluating ${job.runId}@${job.version}: ${result.message}`);
      if (this.runs.get(run.id) !== run) return;
      this.route(run, run.evaluated(job, result, this.clock.now()));
      this.changed(run.id);
    };
    const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));
    let result: ReturnType<Evaluator>;
    try {
      result = (this.options.evaluator ?? slicedEvaluator)(job);
    } catch (e) {
      finish(asError(e));
      return;
    }
    if (result instanceof Promise) result.then(finish, (e) => finish(asError(e)));
    else finish(result);
  }

  private saveSession(session: Session): void {
    const stats = this.runs.get(session.runId)?.sessions.get(session.id);
    if (stats) this.store.saveSession({ runId: session.runId, token: session.token, stats });
  }

  /** The current version's parameter frame, encoded once per version for every session. */
  private currentFrame(run: Run): { version: number; frame: Uint8Array; sha256?: string } {
    const version = run.record.version;
    let cached = this.parameterFrames.get(run.id);
    if (cached?.version !== version) {
      cached = {
        version,
        frame: this.encode({ type: "parameters", version, tensors: run.parameterTensors() }, ""),
      };
      this.parameterFrames.set(run.id, cached);
    }
    return cached;
  }

  private sendParameters(peer: Peer, session: Session, run: Run): void {
    const cached = this.currentFrame(run);
    this.counters.parameterFrames++;
    this.transmit(peer, cached.frame);
    session.knownVersion = cached.version;
    // A peer named for this version or an older one will not be asked (the session holds it now):
    // the naming must not be counted as a delivery when the session's update arrives.
    session.fromPeers = session.fromPeers.filter((n) => n.version > cached.version);
    if (run.config.peers && session.peers) run.parameterSources.hold(session.id, cached.version);
  }

  /**
   * A lease's parameters for a session that is behind: from a peer that holds them when the run
   * uses peers (the lease names it and the frame's hash), else in a frame from the coordinator.
   */
  private provideParameters(
    peer: Peer,
    session: Session,
    run: Run,
    lease: Extract<Payload, { type: "lease" }>,
  ): void {
    const version = run.record.version;
    const from =
      run.config.peers && session.peers
        ? run.parameterSources.pick(session.id, version, (id) => this.canServe(run, id))
        : undefined;
    if (from === undefined || !this.introduce(session.id, from)) {
      this.sendParameters(peer, session, run);
      return;
    }
    const cached = this.currentFrame(run);
    cached.sha256 ??= sha256Hex(cached.frame);
    lease.parametersFrom = from;
    lease.parametersSha256 = cached.sha256;
    session.knownVersion = version;
    // A session holds two live leases at most (run.ts MAX_LEASES): keep as many namings.
    session.fromPeers = [
      ...session.fromPeers.slice(-1),
      { peer: from, version, bytes: cached.frame.byteLength },
    ];
    this.counters.peerParameterFrames++;
  }

  private canServe(run: Run, id: string): boolean {
    const other = this.sessions.get(id);
    const stats = run.sessions.get(id);
    return (
      other?.peer !== undefined && other.peers && stats?.connected === true && !stats.quarantined
    );
  }

  /**
   * The peer a lease named did not deliver: the coordinator sends the frame. Only once per
   * named lease (a request nobody was told to make would turn a small frame into a whole
   * model's worth of bytes out); a bad hash counts against the peer (ParameterSources.accuse).
   */
  private fallBack(
    peer: Peer,
    session: Session,
    run: Run,
    p: Extract<Payload, { type: "parametersRequest" }>,
    ref: string,
  ): void {
    const named = session.fromPeers.find((n) => n.peer === p.peer && n.version === p.version);
    if (!named) {
      this.reply(
        peer,
        errorPayload("unknownLease", `no lease of yours named ${p.peer} for version ${p.version}`, {
          ref,
        }),
      );
      return;
    }
    session.fromPeers = session.fromPeers.filter((n) => n !== named);
    const fallbacks = this.counters.peerFallbacks;
    fallbacks[p.failure] = (fallbacks[p.failure] ?? 0) + 1;
    if (p.failure === "badHash") {
      if (run.parameterSources.accuse(p.peer, session.id)) {
        this.counters.peerStrikes++;
        this.route(run, run.strikeSession(p.peer, "served parameter bytes that did not match"));
      }
    } else if (p.failure === "missing") run.parameterSources.forget(p.peer);
    else run.parameterSources.undelivered(p.peer, session.id);
    this.sendParameters(peer, session, run);
  }

  /** Bytes that went from one session to another instead of through here (counted once the
   * receiver trained on them: its update's base version is the one the peer was named for). */
  private peerTraffic(run: Run, from: string, to: string, bytes: number): void {
    run.traffic.peerBytes += bytes;
    const served = run.sessions.get(from);
    const received = run.sessions.get(to);
    if (served) served.peerBytesOut = (served.peerBytesOut ?? 0) + bytes;
    if (received) received.peerBytesIn = (received.peerBytesIn ?? 0) + bytes;
  }

  /** WebSocket bytes by run and session, beside the process's totals. */
  private countTraffic(peer: Peer, bytes: number, way: "in" | "out"): void {
    const session = this.peers.get(peer)?.session;
    if (!session) return;
    const run = this.runs.get(session.runId);
    const stats = run?.sessions.get(session.id);
    if (!run || !stats) return;
    if (way === "in") {
      run.traffic.bytesIn += bytes;
      stats.bytesIn = (stats.bytesIn ?? 0) + bytes;
    } else {
      run.traffic.bytesOut += bytes;
      stats.bytesOut = (stats.bytesOut ?? 0) + bytes;
    }
  }

  /** An older version's parameters, for a copy lease that starts from it. */
  private sendCopyParameters(peer: Peer, session: Session, run: Run, version: number): void {
    const kept = run.copyParameters(version);
    if (!kept) return;
    this.counters.parameterFrames++;
    this.transmit(peer, this.encode({ type: "parameters", ...kept }, ""));
    session.knownVersion = version;
  }

  /** The parameters of the version contributors are evaluating (usually the current one). */
  private sendHeldOutParameters(peer: Peer, session: Session, run: Run): void {
    const held = run.heldOutParameters();
    if (!held) return;
    if (held.version === run.record.version) {
      this.sendParameters(peer, session, run);
      return;
    }
    let cached = this.heldOutFrames.get(run.id);
    if (cached?.version !== held.version) {
      cached = { version: held.version, frame: this.encode({ type: "parameters", ...held }, "") };
      this.heldOutFrames.set(run.id, cached);
    }
    this.counters.parameterFrames++;
    this.transmit(peer, cached.frame);
    session.knownVersion = held.version;
  }

  private reply(peer: Peer, payload: Payload): void {
    this.send(peer, payload);
  }

  private send(peer: Peer, payload: Payload, sender = "coordinator"): void {
    this.transmit(peer, this.encode(payload, this.peers.get(peer)?.session?.id ?? "", sender));
  }

  private encode(payload: Payload, recipient: string, sender = "coordinator"): Uint8Array {
    return encodeMessage({
      messageId: `c${++this.messageCount}`,
      sender,
      recipient,
      timestamp: this.clock.now(),
      payload,
    });
  }

  private transmit(peer: Peer, frame: Uint8Array): void {
    this.counters.bytesOut += frame.byteLength;
    this.countTraffic(peer, frame.byteLength, "out");
    if (this.hold(() => this.deliver(peer, frame))) return;
    this.deliver(peer, frame);
  }

  private deliver(peer: Peer, frame: Uint8Array): void {
    try {
      peer.send(frame);
    } catch {
      // A socket that died mid-send is cleaned up by its close event.
    }
  }

  /** Closes a connection, after what was sent to it before (see hold). */
  private closePeer(peer: Peer, code: number, reason: string): void {
    if (!this.hold(() => peer.close(code, reason))) peer.close(code, reason);
  }

  /** Actions waiting for the Store's writes to become durable (group commit). */
  private held = 0;

  /**
   * Queues `action` when writes wait to become durable; false when it may run now. Each action
   * waits for the writes made before it: a commit's fsync can still be running when the next
   * turn's events write and send, and those wait for a later fsync. The gate tells in order.
   */
  private hold(action: () => void): boolean {
    const gate = this.options.commits;
    if (!gate?.pending && this.held === 0) return false;
    this.held++;
    gate!.whenDurable(() => {
      this.held--;
      action();
    });
    return true;
  }
}

/** What a worker needs of the run's configuration, in the wire's terms. */
export function trainingConfig(c: RunConfig): TrainingConfig {
  return {
    strategy: c.strategy.kind,
    batchSize: c.batchSize,
    innerSteps: c.strategy.kind === "localSgd" ? c.strategy.innerSteps : 1,
    localOptimizer: c.local.kind,
    learningRate: c.local.learningRate,
    momentum: c.local.momentum,
    weightDecay: c.local.weightDecay,
    updateEncoding: c.updateEncoding,
    ...((c.reduceGroup ?? 0) >= 2 ? { reduceGroup: c.reduceGroup } : {}),
  };
}

/** A random id from the Web Crypto API (available in Node, browsers and workerd alike). */
export function randomId(prefix: string, bytes = 9): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return `${prefix}_${[...b].map((x) => x.toString(36).padStart(2, "0")).join("")}`;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
