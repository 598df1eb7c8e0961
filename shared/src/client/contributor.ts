// A contributor's side of the protocol, whatever computes its updates: join (or resume with the
// session token), lease a batch, hand it to a Trainer, send the update, ask for the next lease.
// The browser tab (WGSL kernels in a Web Worker) and the headless worker (the CPU reference) are
// both a Contributor with a different Trainer, so the protocol lives once.
//
// A Trainer may answer synchronously (the CPU reference, in the in-process simulation, where the
// order of events must not depend on microtasks) or with promises (the GPU): every step goes
// through one queue, which stays synchronous until a promise shows up.
import { type Batch, type DatasetShard, decodeShard, leaseBatch } from "../data/shard.ts";
import {
  partHash,
  partMatches,
  partOwners,
  partRange,
  pieceHashes,
  reducePart,
} from "../reduce/pieces.ts";
import { sha256Hex } from "../sha256.ts";
import { decodeMessage, encodeMessage } from "../wire/codec.ts";
import {
  type ClientInfo,
  type DataSource,
  type Encoding,
  type HeldOut,
  type ModelSpec,
  type Payload,
  type PeerFailure,
  PROTOCOL_VERSION,
  type Tensor,
  type TrainingConfig,
} from "../wire/messages.ts";
import { PeerFetchError, type PeerNetwork } from "./peers.ts";

export type Lease = Extract<Payload, { type: "lease" }>;
type Maybe<T> = T | Promise<T>;

export interface WorkResult {
  /** The update, one tensor per parameter, encoded as `encoding`. */
  tensors: Tensor[];
  encoding: Encoding;
  loss: number;
  correct: number;
  /** Overrides the lease id sent back (only the adversarial tests' workers do). */
  leaseId?: number;
}

export interface Trainer {
  /** Describes the device for the coordinator's workers table. */
  readonly client: ClientInfo;
  /** The run's model and training settings, on every welcome (a reconnect may change runs). */
  prepare(model: ModelSpec, training: TrainingConfig): Maybe<void>;
  /** The parameters the next lease starts from. */
  setParameters(version: number, tensors: readonly Tensor[]): Maybe<void>;
  /**
   * Computes the lease's update (a gradient, or a parameter delta after inner steps) on its
   * batch, which the contributor built from the run's dataset shard.
   */
  work(lease: Lease, batch: Batch, training: TrainingConfig): Maybe<WorkResult>;
}

/** What an evaluation lease measured (see HeldOut and EvaluationReport). */
export interface HeldOutMeasure {
  loss: number;
  correct: number;
  sample: string;
}

/** Measures a part of an evaluation on a version's parameters (the CPU reference's measureHeldOut). */
export type HeldOutEvaluator = (
  model: ModelSpec,
  parameters: Float32Array,
  shard: DatasetShard,
  part: HeldOut,
) => Maybe<HeldOutMeasure>;

export interface ContributorOptions {
  /** "" lets the coordinator pick an active run. */
  runId?: string;
  /** The name on the run's leaderboard; anonymous when absent. */
  displayName?: string;
  /** A token from an earlier session, to resume it. */
  sessionToken?: string;
  /** How the contributor waits; setTimeout by default. */
  schedule?: (fn: () => void, ms: number) => void;
  /** Every message received (logs, tests, the page's status). */
  onMessage?: (payload: Payload) => void;
  /** After each lease's work: its stats and how long it took. */
  onWork?: (result: WorkResult & { samples: number; ms: number }) => void;
  /** A trainer failure (a lost GPU device): the contributor stops. */
  onError?: (error: unknown) => void;
  /**
   * The bytes of the run's dataset shard (the contributor checks them against the welcome's
   * hash). `connect` fetches it over HTTP from the coordinator when this is not given.
   */
  loadShard?: (source: DataSource) => Maybe<Uint8Array>;
  /** Milliseconds now, for measuring work; performance.now by default. */
  now?: () => number;
  /**
   * Ask for the next lease while working on one, so that the round trip (and the coordinator's
   * commit) overlaps the computation instead of following it. The coordinator allows a session
   * two live leases.
   */
  prefetch?: boolean;
  /**
   * Takes evaluation leases with this: the contributor then measures parts of the run's
   * held-out evaluation too, which the coordinator compares between two sessions.
   */
  evaluate?: HeldOutEvaluator;
  /**
   * Fetches parameter frames from the peers leases name, and serves its own (peers.ts). Given the
   * function that relays a signaling payload to another session through the coordinator.
   */
  peers?: (sendSignal: (to: string, payload: Uint8Array) => void) => PeerNetwork;
  /** Adds 1 to the first value of every part it reduces (only the adversarial tests' workers). */
  misreduce?: boolean;
}

type Declared = {
  lease: Lease;
  /** The update as one fp32 array: what its parts are cut from, and what a fallback sends. */
  flat: Float32Array;
  update: Extract<Payload, { type: "gradientUpdate" }>;
};

/** How long a peer has to deliver a frame before the coordinator is asked for it instead. */
const PEER_FETCH_MIN_MS = 2_000;
const PEER_FETCH_MAX_MS = 15_000;
/** How long to wait for the coordinator's frame after asking (then train on what is held). */
const FALLBACK_WAIT_MS = 30_000;
/** How long a group member has to send a part of its update (the group's deadline is longer). */
const PART_FETCH_MS = 5_000;

/**
 * Shards this process has checked and decoded, by their bytes: the workers of a simulation or of
 * `pangea worker --count` share one array from their loader, and hashing and decoding MNIST's
 * 7.9 MB once per worker was most of a simulated run's time. (A tab has its own bytes.)
 */
const checkedShards = new WeakMap<Uint8Array, { hash: string; shard: DatasetShard }>();

export class Contributor {
  runId = "";
  sessionId = "";
  sessionToken: string;
  version = -1;
  model: ModelSpec | undefined;
  training: TrainingConfig | undefined;
  updatesSent = 0;
  acks = 0;
  samplesDone = 0;
  refusals: string[] = [];
  /** The run ended for this contributor (finished, stopped, quarantined, unknown). */
  finished = false;
  paused = false;
  /** The fraction of time spent working (1: flat out); the rest is spent waiting between leases. */
  duty = 1;
  /** Measured samples per second of work, for the coordinator's lease deadlines. */
  samplesPerSecond = 0;
  /** Parameter frames from peers, by how they ended (the page shows them; tests count them). */
  readonly peerFrames = { fetched: 0, failed: 0 };
  readonly peers: PeerNetwork | undefined;
  /** The run's dataset, once fetched and checked; leases name batches in it. */
  shard: DatasetShard | undefined;
  private shardHash = "";
  loadShard: ((source: DataSource) => Maybe<Uint8Array>) | undefined;
  private send: (frame: Uint8Array) => void = () => {};
  private connected = false;
  private messages = 0;
  /** The lease request awaiting its answer: one at a time, so that retries never multiply. */
  private leaseRequest = "";
  private joinRequest = "";
  /** Leases received on this connection and not yet finished (being worked on, or queued). */
  private held = 0;
  /** Counts connections: a lease from an older one is void (it went back when that one closed). */
  private epoch = 0;
  private queue: Maybe<void> = undefined;
  /** The parameters last set, as of the queue's position (evaluation leases measure them). */
  private parameters: { version: number; tensors: readonly Tensor[] } | undefined;
  /** The version the trainer holds, as of the queue's position (what a lease's work starts from). */
  private trainerVersion = -1;
  private heartbeatTimer = 0;
  /** A fallback under way: the coordinator's next parameter frame goes here, not to the queue. */
  private awaitingParameters: ((p: { version: number; tensors: Tensor[] }) => void) | undefined;
  private fallbackRequest = "";
  /** Updates declared for reduction among peers, by the declaration's message id, until acked. */
  private readonly declared = new Map<string, Declared>();
  /** Groups reduced (or fallen back) by this contributor (tests count them). */
  readonly reductions = { parts: 0, fellBack: 0 };
  private readonly schedule: (fn: () => void, ms: number) => void;
  private readonly now: () => number;

  constructor(
    readonly trainer: Trainer,
    readonly options: ContributorOptions = {},
  ) {
    this.runId = options.runId ?? "";
    this.sessionToken = options.sessionToken ?? "";
    this.schedule = options.schedule ?? ((fn, ms) => setTimeout(fn, ms));
    this.now = options.now ?? (() => performance.now());
    this.loadShard = options.loadShard;
    this.peers = options.peers?.((to, payload) => {
      if (this.connected) this.post({ type: "signal", payload }, to);
    });
  }

  /** A connection is open: join (resuming the session when a token is known). */
  connect(send: (frame: Uint8Array) => void): void {
    this.send = send;
    this.connected = true;
    // Whatever was in flight on an older connection is gone with it.
    this.leaseRequest = "";
    for (const ref of [...this.declared.keys()]) this.settleDeclaration(ref);
    this.held = 0;
    this.epoch++;
    this.heartbeatTimer++;
    this.joinRequest = this.post({
      type: "join",
      runId: this.runId,
      sessionToken: this.sessionToken,
      client: this.trainer.client,
      encodings: ["fp32", "fp16", "int8"],
      protocolVersion: PROTOCOL_VERSION,
      evaluates: this.options.evaluate !== undefined,
      peers: this.peers !== undefined,
      ...(this.options.displayName ? { displayName: this.options.displayName } : {}),
    });
  }

  /** The connection dropped: wait for the next connect. */
  disconnect(): void {
    this.connected = false;
    this.heartbeatTimer++;
    // The lease that waited for the coordinator's frame went back with the connection.
    this.awaitingParameters?.({ version: this.trainerVersion, tensors: [] });
  }

  /** Says goodbye (leases go back at once) and stops. */
  leave(reason = "the contributor left"): void {
    if (this.connected) this.post({ type: "leave", reason });
    this.finished = true;
    this.disconnect();
    this.peers?.close();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.requestLease();
  }

  /** One frame from the coordinator. A frame that fails to decode is reported, not thrown. */
  receive(frame: Uint8Array): void {
    const decoded = decodeMessage(frame);
    if (!decoded.ok) {
      this.options.onError?.(
        new Error(`the coordinator sent a bad frame: ${decoded.error.message}`),
      );
      return;
    }
    const p = decoded.message.payload;
    this.options.onMessage?.(p);
    switch (p.type) {
      case "welcome": {
        this.runId = p.runId;
        this.sessionId = p.sessionId;
        this.sessionToken = p.sessionToken;
        this.model = p.model;
        this.training = p.training;
        this.peers?.configure(p.iceServers ?? []);
        // The welcome carries no parameters: they arrive (a parameters frame) just before the
        // first lease, so a join costs the coordinator little. A checkpoint-style welcome that
        // does carry them is still taken.
        const carried = p.parameters.length > 0;
        this.version = carried ? p.version : -1;
        this.enqueue(() =>
          after(this.trainer.prepare(p.model, p.training), () =>
            carried ? this.setParameters(p.version, p.parameters) : undefined,
          ),
        );
        const data = p.data;
        if (data && data.sha256 !== this.shardHash) this.enqueue(() => this.fetchShard(data));
        this.heartbeat(p.heartbeatMs);
        this.enqueue(() => this.requestLease());
        return;
      }
      case "parameters": {
        if (p.deltaFrom !== undefined) return;
        // The coordinator's frame is the same bytes for every session: peers may have it.
        this.peers?.offer(p.version, frame);
        const waiting = this.awaitingParameters;
        if (waiting) {
          this.awaitingParameters = undefined;
          this.version = p.version;
          waiting(p);
        }
        // Usually newer; an older version comes before an evaluation lease on it.
        else if (p.version !== this.version) {
          this.version = p.version;
          this.enqueue(() => this.setParameters(p.version, p.tensors));
        }
        return;
      }
      case "signal":
        this.peers?.signal(decoded.message.sender, p.payload);
        return;
      case "lease": {
        this.leaseRequest = "";
        this.held++;
        const epoch = this.epoch;
        if (p.parametersFrom && !p.heldOut) {
          this.version = Math.max(this.version, p.baseVersion);
          this.enqueue(() => this.fromPeer(p, epoch));
        }
        this.enqueue(() => (p.heldOut ? this.measure(p, p.heldOut, epoch) : this.work(p, epoch)));
        // Throttled, the rest between leases is the point: no prefetch then.
        if (this.duty >= 1) this.requestLease();
        return;
      }
      case "ack":
        this.acks++;
        this.settleDeclaration(p.ref);
        return;
      case "reducePlan":
        this.reduceWith(p, this.epoch);
        return;
      case "error":
        this.refused(p);
        return;
      default:
        return;
    }
  }

  private refused(p: Extract<Payload, { type: "error" }>): void {
    this.refusals.push(p.code);
    // A declaration's group will not reduce it: the update goes whole; or it was refused.
    const declared = this.settleDeclaration(p.ref);
    if (declared) {
      if (p.code === "reduceFallback" && this.connected) {
        this.reductions.fellBack++;
        this.post(declared.update);
      }
      return;
    }
    // The coordinator will not send the frame a fallback asked for: stop waiting for it.
    if (p.ref !== "" && p.ref === this.fallbackRequest) {
      this.fallbackRequest = "";
      this.awaitingParameters?.({ version: this.trainerVersion, tensors: [] });
      return;
    }
    // A refused update needs nothing more: the next lease was already asked for.
    if (p.ref !== "" && p.ref !== this.leaseRequest && p.ref !== this.joinRequest) return;
    if (p.ref === this.leaseRequest) this.leaseRequest = "";
    const retry = p.retryAfterMs > 0;
    if (p.code === "rateLimited" || (p.code === "runNotActive" && retry)) {
      this.schedule(() => this.requestLease(), p.retryAfterMs || 500);
    } else if (p.code === "unknownRun" && retry) {
      // No run is active yet: ask again later.
      this.schedule(() => {
        if (this.connected && !this.finished) this.connect(this.send);
      }, p.retryAfterMs);
    } else if (
      p.code === "runNotActive" ||
      p.code === "quarantined" ||
      p.code === "unknownRun" ||
      p.code === "protocolVersion"
    ) {
      this.finished = true;
    } else if (p.ref !== "") {
      this.requestLease();
    }
  }

  /** Keeps the session alive while it waits (a paused run, an idle epoch end). */
  private heartbeat(everyMs: number): void {
    const timer = ++this.heartbeatTimer;
    const beat = () => {
      if (timer !== this.heartbeatTimer || this.finished || !this.connected) return;
      this.post({ type: "heartbeat", sentAt: Date.now(), samplesPerSecond: this.samplesPerSecond });
      this.schedule(beat, everyMs);
    };
    this.schedule(beat, everyMs);
  }

  private requestLease(): void {
    if (!this.connected || this.finished || this.paused || this.leaseRequest) return;
    if (this.held >= (this.options.prefetch ? 2 : 1)) return;
    this.leaseRequest = this.post({ type: "leaseRequest", maxBatches: 1 });
  }

  /**
   * Fetches the run's shard and checks it against the welcome's hash before any batch is built
   * from it: a wrong or damaged copy stops the contributor with the reason (training on it would
   * send updates the coordinator cannot tell from sabotage).
   */
  private fetchShard(source: DataSource): Maybe<void> {
    const load = this.loadShard;
    if (!load) throw new Error(`no way to fetch the dataset ${source.name} (${source.url})`);
    return after(load(source), (bytes) => {
      let known = checkedShards.get(bytes);
      if (known?.hash !== source.sha256) {
        const hash = sha256Hex(bytes);
        if (hash !== source.sha256)
          throw new Error(
            `the dataset ${source.name} from ${source.url} has SHA-256 ${hash.slice(0, 12)}…, the coordinator named ${source.sha256.slice(0, 12)}…`,
          );
        known = { hash, shard: decodeShard(bytes, source.name) };
        checkedShards.set(bytes, known);
      }
      this.shard = known.shard;
      this.shardHash = known.hash;
    });
  }

  private work(lease: Lease, epoch: number): Maybe<void> {
    if (epoch !== this.epoch || !this.connected || this.finished) return;
    if (this.trainerVersion < 0) {
      // No parameters came (neither from the peer nor, in time, from the coordinator): the
      // lease lapses at its deadline and its batch goes to someone else.
      this.held--;
      this.requestLease();
      return;
    }
    const training = this.training!;
    const started = this.now();
    const batch = leaseBatch(lease.batch, this.shard, this.model!);
    return after(this.trainer.work(lease, batch, training), (result) => {
      if (epoch === this.epoch) this.held--;
      const ms = this.now() - started;
      const samples = batch.count;
      // A local-SGD lease's batch holds a batch per inner step: its samples are the work.
      if (ms > 0) this.samplesPerSecond = (1000 * samples) / ms;
      this.samplesDone += samples;
      this.options.onWork?.({ ...result, samples, ms });
      // A reconnect while working: the lease went back with the old connection.
      if (epoch !== this.epoch || !this.connected) return;
      this.updatesSent++;
      const update: Extract<Payload, { type: "gradientUpdate" }> = {
        type: "gradientUpdate",
        gradientId: `${this.sessionId}:${lease.leaseId}`,
        gradients: result.tensors,
        loss: result.loss,
        correct: result.correct,
        timestamp: Date.now(),
        nodeId: this.sessionId,
        batchId: lease.batch.batchId,
        leaseId: result.leaseId ?? lease.leaseId,
        baseVersion: Math.min(this.trainerVersion, lease.baseVersion),
        sampleCount: samples,
        encoding: result.encoding,
        kind: training.strategy === "localSgd" ? "parameterDelta" : "gradient",
        innerSteps: lease.innerSteps,
      };
      if ((training.reduceGroup ?? 0) >= 2 && this.peers && result.leaseId === undefined)
        this.declare(lease, update);
      else this.post(update);
      // The throttle: rest in proportion to the work, so the device is busy `duty` of the time.
      const rest = this.duty < 1 ? (ms * (1 - this.duty)) / Math.max(this.duty, 0.05) : 0;
      if (rest > 0) this.schedule(() => this.requestLease(), rest);
      else this.requestLease();
    });
  }

  /**
   * Reduction among peers: the update is declared (its pieces' hashes) and shared with the
   * group to come, instead of sent; it is sent whole only if the group falls back.
   */
  private declare(lease: Lease, update: Extract<Payload, { type: "gradientUpdate" }>): void {
    if (update.gradients.some((t) => !(t.data instanceof Float32Array))) {
      this.post(update);
      return;
    }
    const n = update.gradients.reduce((a, t) => a + t.data.length, 0);
    // A copy: a trainer may reuse its result's buffers for the next lease.
    const flat = new Float32Array(n);
    let at = 0;
    const gradients = update.gradients.map((t) => {
      flat.set(t.data as Float32Array, at);
      const data = flat.subarray(at, at + t.data.length);
      at += t.data.length;
      return { ...t, data };
    });
    this.peers!.share(lease.leaseId, new Uint8Array(flat.buffer));
    const messageId = this.post({ ...update, gradients: [], pieceHashes: pieceHashes(flat) });
    this.declared.set(messageId, { lease, flat, update: { ...update, gradients } });
  }

  /** A declaration is settled (acknowledged, fallen back, refused): its bytes are not served. */
  private settleDeclaration(ref: string): Declared | undefined {
    const d = ref === "" ? undefined : this.declared.get(ref);
    if (!d) return undefined;
    this.declared.delete(ref);
    this.peers?.unshare(d.lease.leaseId);
    return d;
  }

  /** The group's plan: this member reduces one part and checks another (pieces.ts). */
  private reduceWith(plan: Extract<Payload, { type: "reducePlan" }>, epoch: number): void {
    const i = plan.members.findIndex((m) => m.session === this.sessionId);
    const mine = [...this.declared.values()].find(
      (d) => d.lease.leaseId === plan.members[i]?.leaseId,
    );
    if (i < 0 || !mine || !this.peers) return;
    const g = plan.members.length;
    for (let part = 0; part < g; part++) {
      const { reducer, checker } = partOwners(g, part);
      if (reducer === i || checker === i)
        void this.reducePartOf(plan, part, reducer === i, i, mine.flat, epoch);
    }
  }

  private async reducePartOf(
    plan: Extract<Payload, { type: "reducePlan" }>,
    part: number,
    reducing: boolean,
    me: number,
    flat: Float32Array,
    epoch: number,
  ): Promise<void> {
    const g = plan.members.length;
    const n = flat.length;
    const { start, end } = partRange(n, g, part);
    const badBytes: string[] = [];
    const missing: string[] = [];
    const values = await Promise.all(
      plan.members.map(async (m, j) => {
        if (j === me) return flat.subarray(start, end);
        try {
          const bytes = await this.peers!.fetchPart(
            m.session,
            m.leaseId,
            4 * start,
            4 * end,
            PART_FETCH_MS,
          );
          const v = new Float32Array(end - start);
          if (bytes.byteLength === v.byteLength) new Uint8Array(v.buffer).set(bytes);
          if (bytes.byteLength === v.byteLength && partMatches(v, m.pieceHashes, n, g, part))
            return v;
          badBytes.push(m.session);
        } catch {
          missing.push(m.session);
        }
        return undefined;
      }),
    );
    if (epoch !== this.epoch || !this.connected) return;
    const empty = new Uint8Array(0);
    if (badBytes.length > 0 || missing.length > 0) {
      this.post({
        type: "reducedPart",
        group: plan.group,
        part,
        data: empty,
        sha256: "",
        badBytes,
        missing,
      });
      return;
    }
    const reduced = reducePart(
      values as Float32Array[],
      plan.members.map((m) => m.weight),
      plan.aggregator,
      plan.trim,
    );
    if (this.options.misreduce) reduced[0]! += 1;
    this.reductions.parts++;
    this.post({
      type: "reducedPart",
      group: plan.group,
      part,
      data: reducing ? new Uint8Array(reduced.buffer) : empty,
      sha256: partHash(reduced),
      badBytes,
      missing,
    });
  }

  /**
   * The lease's parameters from the peer it names, checked against the hash it carries; on any
   * failure (no route, too slow, wrong bytes, the peer lacks them) from the coordinator instead.
   */
  private fromPeer(lease: Lease, epoch: number): Maybe<void> {
    const version = lease.baseVersion;
    if (epoch !== this.epoch || !this.connected || this.trainerVersion === version) return;
    const peer = lease.parametersFrom!;
    const network = this.peers;
    if (!network) return this.fromCoordinator(version, peer, "unreachable");
    const timeout = Math.min(
      PEER_FETCH_MAX_MS,
      Math.max(PEER_FETCH_MIN_MS, (lease.deadline - Date.now()) / 3),
    );
    return network.fetch(peer, version, timeout).then(
      (frame) => {
        const decoded = sha256Hex(frame) === lease.parametersSha256 ? decodeMessage(frame) : null;
        const p = decoded?.ok ? decoded.message.payload : undefined;
        if (p?.type !== "parameters" || p.version !== version || p.deltaFrom !== undefined)
          return this.fromCoordinator(version, peer, "badHash");
        this.peerFrames.fetched++;
        network.offer(version, frame);
        return this.setParameters(version, p.tensors);
      },
      (e: unknown) =>
        this.fromCoordinator(
          version,
          peer,
          e instanceof PeerFetchError ? e.failure : "unreachable",
        ),
    );
  }

  private fromCoordinator(version: number, peer: string, failure: PeerFailure): Promise<void> {
    this.peerFrames.failed++;
    if (!this.connected) return Promise.resolve();
    return new Promise<{ version: number; tensors: Tensor[] }>((resolve) => {
      const give = (p: { version: number; tensors: Tensor[] }) => {
        if (this.awaitingParameters === give) this.awaitingParameters = undefined;
        resolve(p);
      };
      // Through the contributor's own clock (simulated in the core suite); resolving twice is harmless.
      this.schedule(() => give({ version: this.trainerVersion, tensors: [] }), FALLBACK_WAIT_MS);
      this.awaitingParameters = give;
      this.fallbackRequest = this.post({ type: "parametersRequest", version, peer, failure });
    }).then((p) => (p.tensors.length > 0 ? this.setParameters(p.version, p.tensors) : undefined));
  }

  private setParameters(version: number, tensors: readonly Tensor[]): Maybe<void> {
    this.trainerVersion = version;
    if (this.options.evaluate) this.parameters = { version, tensors };
    return this.trainer.setParameters(version, tensors);
  }

  /** An evaluation lease: measures its part on the version it names, and reports it. */
  private measure(lease: Lease, part: HeldOut, epoch: number): Maybe<void> {
    if (epoch !== this.epoch || !this.connected || this.finished) return;
    const evaluate = this.options.evaluate;
    const held = this.parameters;
    const done = () => {
      if (epoch === this.epoch) this.held--;
      this.requestLease();
    };
    // Not the version the lease names (it cannot happen with this coordinator): no report,
    // and the lease lapses at its deadline.
    if (!evaluate || !this.shard || held?.version !== lease.baseVersion) return done();
    const flat = new Float32Array(held.tensors.reduce((n, t) => n + t.data.length, 0));
    let at = 0;
    for (const t of held.tensors) {
      flat.set(t.data as Float32Array, at);
      at += t.data.length;
    }
    return after(evaluate(this.model!, flat, this.shard, part), (m) => {
      if (epoch === this.epoch && this.connected)
        this.post({
          type: "evaluation",
          leaseId: lease.leaseId,
          version: lease.baseVersion,
          loss: m.loss,
          correct: m.correct,
          sample: m.sample,
        });
      done();
    });
  }

  private enqueue(step: () => Maybe<void>): void {
    let next: Maybe<void>;
    try {
      next = after(this.queue, step);
    } catch (e) {
      // A synchronous trainer (or shard check) failed: the same end as an asynchronous one.
      this.fail(e);
      return;
    }
    if (next instanceof Promise) {
      const guarded = next.catch((e) => this.fail(e));
      this.queue = guarded;
      void guarded.then(() => {
        if (this.queue === guarded) this.queue = undefined;
      });
    }
  }

  private fail(error: unknown): void {
    this.held = 0;
    this.finished = true;
    this.options.onError?.(error);
  }

  private post(payload: Payload, recipient = "coordinator"): string {
    const messageId = `w${++this.messages}`;
    this.send(
      encodeMessage({
        messageId,
        sender: this.sessionId || "new",
        recipient,
        timestamp: Date.now(),
        payload,
      }),
    );
    return messageId;
  }
}

/** Runs `f` after `x`: at once when `x` is not a promise, so synchronous trainers stay synchronous. */
function after<T, U>(x: Maybe<T>, f: (value: T) => Maybe<U>): Maybe<U> {
  return x instanceof Promise ? x.then(f) : f(x);
}
