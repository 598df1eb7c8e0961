// One training run: its parameters and optimizer, its scheduler, the sessions training it, and
// the version being gathered. Methods take the current time and return the messages to send;
// the Coordinator routes them. Every version is committed to the Store before any of those
// messages (acknowledgements; parameters go out with later leases) is returned, so nothing announced can be lost.
import {
  type ClientInfo,
  decayMask,
  partRange,
  REDUCE_PIECES,
  type EvaluationReport,
  type GradientUpdate,
  initParameters,
  type ParameterLayout,
  type Payload,
  parameterLayout,
  type Tensor,
} from "@pangea/shared";
import { updateNorm, type WeightedUpdate } from "@pangea/shared";
import { displayName, earn, forfeit, leaderboard, unearn, verify } from "./credit.ts";
import { type RunData, sampleOffset } from "./datasets.ts";
import { evaluationParts, type EvaluationJob, type EvaluationResult } from "./evaluation.ts";
import { ContributorEvaluation, WINDOWS_PER_LEASE } from "./evaluation-leases.ts";
import { ParameterSources } from "./parameter-sources.ts";
import { type Declaration, type GroupOutcome, type Group, ReduceGroups } from "./reduce-groups.ts";
import type {
  MetricPoint,
  RunRecord,
  RunSnapshot,
  RunState,
  SessionStats,
  Store,
} from "./ports.ts";

export type { SessionStats };

import type { RunConfig } from "./run-config.ts";
import { batchSamples, type Lease, Scheduler } from "./scheduler.ts";
import { ParameterSlice } from "./parameter-slice.ts";
import { initialOptimizerState, type OptimizerState } from "./server-optimizer.ts";
import {
  checkClaim,
  checkUpdate,
  errorPayload,
  type Refusal,
  sumOfSquares,
  type UpdateContext,
} from "./validate.ts";

/** A message for one session of this run, or for all of them ("*"). */
export interface Outgoing {
  to: string;
  payload: Payload;
}

interface Contribution {
  key: string;
  lease: Lease;
  sessionId: string;
  messageId: string;
  tensors: Float32Array[];
  weight: number;
  loss: number;
  samples: number;
  /** A third copy of its batch disagreed with it: it is committed, but earns no credit. */
  disproved?: boolean;
  /** A group's update reduced among peers: its members' declarations, each a vote's worth. */
  members?: Declaration[];
}

/** The declarations (or the one update) a contribution stands for: what is committed and acked. */
function parts(e: Contribution): Array<{
  sessionId: string;
  messageId: string;
  lease: Lease;
  samples: number;
}> {
  return e.members ?? [e];
}

/** Refusals that no honest worker produces: they count towards quarantine. */
const STRIKES = new Set([
  "shapeMismatch",
  "nonFinite",
  "normTooLarge",
  "unsupportedMessage",
  "claimMismatch",
]);
/** How long a fallen-back member's lease lasts beyond its group's deadline, to send its update. */
const FALLBACK_GRACE_MS = 15_000;
/** Live leases one session may hold at once. */
const MAX_LEASES = 2;
/** The shortest lease deadline, however fast a session has been. */
const MIN_LEASE_MS = 10_000;
/** Two copies of one batch from one version differing by more than this (relative L2) disagree. */
const REPLICA_TOLERANCE = 0.05;
/**
 * The most closed versions a run with redundancy keeps the parameters of, so that a replica can
 * start from its first copy's version after it closed: in an asynchronous run, a version closes
 * with every update, and a replica must be computed within this many of them.
 */
export const COPY_BASES = 8;
/** The most rows one page of the workers table holds. */
export const WORKERS_PAGE_MAX = 500;

/** Which sessions the workers table lists, and which page of them. */
export interface WorkersQuery {
  show?: "all" | "connected" | "quarantined";
  offset?: number;
  limit?: number;
}

export interface WorkersPage {
  /** The whole crowd, whatever the page shows. */
  summary: { total: number; connected: number; quarantined: number; samplesPerSecond: number };
  show: NonNullable<WorkersQuery["show"]>;
  /** Sessions the `show` filter matches; the page is `workers`, from `offset`. */
  matching: number;
  offset: number;
  limit: number;
  workers: (SessionStats & { lastSeenMsAgo: number })[];
}

export class Run {
  readonly layout: ParameterLayout;
  readonly scheduler: Scheduler;
  readonly sessions = new Map<string, SessionStats>();
  /** Who may serve this run's parameter frames to whom (Run config `peers`). */
  readonly parameterSources = new ParameterSources();
  /** Groups reducing their updates among peers (Run config `reduceGroup`), when the run does. */
  readonly reduce: ReduceGroups | undefined;
  /** WebSocket bytes in and out for this run, and parameter bytes that went between peers
   * instead (since the process started). */
  readonly traffic = { bytesIn: 0, bytesOut: 0, peerBytes: 0 };
  private round: Contribution[] = [];
  private roundOpenedAt = 0;
  /**
   * The parameters of recent versions (at most COPY_BASES), when the run uses redundancy: a
   * replica is computed from its first copy's version, which may have closed since.
   */
  private readonly copyBases = new Map<number, Float32Array>();
  /** First accepted copy of each redundant batch, kept until its replica arrives or its version is no longer kept. */
  private readonly firstCopies = new Map<
    string,
    { tensors: Float32Array[]; sessionId: string; base: number }
  >();
  /** Batches whose two copies disagreed, waiting for a third copy from the same version. */
  private readonly disputes = new Map<
    string,
    { base: number; copies: Array<{ sessionId: string; tensors: Float32Array[] }> }
  >();
  private lastCommitAt: number;
  /** Sessions whose counts changed since the last commit: written with the next one. */
  private readonly touched = new Set<string>();
  /** The whole parameter vector and its optimizer state, stepped as one slice. */
  private readonly slice: ParameterSlice;
  /** Acknowledgements of copies, whose credit is durable only with the next commit. */
  private heldAcks: Outgoing[] = [];

  private constructor(
    public record: RunRecord,
    parameters: Float32Array,
    optimizer: OptimizerState,
    progress: RunSnapshot["progress"],
    private readonly store: Store,
    now: number,
    readonly data: RunData,
  ) {
    this.layout = parameterLayout(record.config.model);
    this.slice = new ParameterSlice(parameters, optimizer, decayMask(this.layout));
    const group = record.config.reduceGroup ?? 0;
    if (group >= 2)
      this.reduce = new ReduceGroups(
        group,
        this.layout.size,
        record.config.aggregation.kind as "mean" | "trimmedMean" | "median",
        record.config.aggregation.trim,
      );
    const batches = Math.ceil(this.data.trainCount / leaseSize(record.config));
    this.scheduler = new Scheduler(
      batches,
      record.config.seed,
      record.config.redundancy,
      progress,
      now * 1000,
    );
    this.lastCommitAt = now;
  }

  /** A new run at version 0, written to the Store. */
  static create(
    id: string,
    config: RunConfig,
    store: Store,
    now: number,
    data: RunData,
    initial?: Float32Array,
  ): Run {
    const parameters = initial ?? initParameters(config.model, config.model.seed);
    if (parameters.length !== parameterLayout(config.model).size)
      throw new Error(
        `${parameters.length} initial parameters for the model's ${parameterLayout(config.model).size}`,
      );
    const record: RunRecord = {
      id,
      config,
      state: "created",
      version: 0,
      createdAt: now,
      updatedAt: now,
      counters: { updatesAccepted: 0, updatesRefused: {}, leaseReissues: 0, samples: 0 },
    };
    const optimizer = initialOptimizerState(config.optimizer, parameters.length);
    const progress = { epoch: 0, done: [] };
    store.createRun({ record, parameters, optimizer, progress });
    return new Run(record, parameters, optimizer, progress, store, now, data);
  }

  /** The run as last committed. */
  static load(snapshot: RunSnapshot, store: Store, now: number, data: RunData): Run {
    const { record, parameters, optimizer, progress } = snapshot;
    return new Run(record, parameters, optimizer, progress, store, now, data);
  }

  get id(): string {
    return this.record.id;
  }

  get config(): RunConfig {
    return this.record.config;
  }

  get epoch(): number {
    return this.scheduler.epoch;
  }

  get active(): boolean {
    return this.record.state === "running";
  }

  /**
   * The current version's parameters and optimizer state: hold these arrays only within one
   * event (the next version's step reuses them).
   */
  get parameters(): Float32Array {
    return this.slice.params;
  }

  get optimizer(): OptimizerState {
    return this.slice.optimizer;
  }

  /** The parameters as wire tensors (views, not copies). */
  parameterTensors(): Tensor[] {
    return this.layout.slots.map((s) => ({
      shape: s.shape,
      dtype: "float32",
      name: s.name,
      data: this.parameters.subarray(s.offset, s.offset + s.size),
    }));
  }

  // --- sessions ---------------------------------------------------------------------------

  /** A session (new, or resumed after a reconnect) takes part. */
  join(sessionId: string, client: ClientInfo, now: number, evaluates = false, name?: string): void {
    const known = this.sessions.get(sessionId);
    if (known) {
      known.connected = true;
      known.lastSeen = now;
      known.client = client;
      known.evaluates = evaluates;
      if (name !== undefined) known.name = displayName(name);
      return;
    }
    this.sessions.set(sessionId, {
      id: sessionId,
      client,
      joinedAt: now,
      lastSeen: now,
      connected: true,
      samplesPerSecond: 0,
      updatesAccepted: 0,
      updatesRefused: 0,
      strikes: 0,
      quarantined: false,
      evaluates,
      name: displayName(name),
      credit: 0,
      verifiedCredit: 0,
      replicasChecked: 0,
    });
  }

  /** The session's connection ended: its leases go back at once. */
  leave(sessionId: string, now: number): void {
    const s = this.sessions.get(sessionId);
    if (s) {
      s.connected = false;
      s.lastSeen = now;
    }
    for (const l of this.scheduler.release(sessionId)) this.reduce?.drop(l.id);
    this.contributed?.release(sessionId);
  }

  /** The session spoke. (Its heartbeat's own speed figure is a claim and is not used: speed is
   * measured from lease to accepted update.) */
  seen(sessionId: string, now: number): void {
    const s = this.sessions.get(sessionId);
    if (s) s.lastSeen = now;
  }

  // --- leases -----------------------------------------------------------------------------

  /** A lease with its batch, or the reason there is none for this session now. */
  requestLease(sessionId: string, now: number): Payload {
    const s = this.sessions.get(sessionId);
    if (!s) return errorPayload("notJoined", "join this run first");
    if (s.quarantined)
      return errorPayload("quarantined", "this session's updates kept failing checks");
    if (!this.active)
      return errorPayload("runNotActive", `the run is ${this.record.state}`, {
        retryAfterMs: this.record.state === "paused" ? 2000 : 0,
      });
    this.expire(now);
    // Evaluation work first: it is short, and it fills the wait of a session whose update is
    // already in the open version.
    const evaluation = this.evaluationLease(s, now);
    if (evaluation) return evaluation;
    const c = this.config;
    const work = leaseSize(c);
    // A deadline from the session's measured speed (4× its expected time, plus 2 s of network),
    // within [MIN_LEASE_MS, leaseMs]; the full leaseMs while its speed is unknown. The floor is
    // for tabs that share a GPU: one tab compiling its pipelines stalls the others for seconds.
    // A tab that closes hands its leases back at once anyway; deadlines only catch silent ones.
    const duration =
      s.samplesPerSecond > 0
        ? Math.round(
            Math.min(c.leaseMs, Math.max(MIN_LEASE_MS, (4000 * work) / s.samplesPerSecond + 2000)),
          )
        : c.leaseMs;
    const held = this.scheduler.liveLeases().filter((l) => l.sessionId === sessionId);
    if (held.length >= MAX_LEASES)
      return errorPayload("rateLimited", `a session holds at most ${MAX_LEASES} leases at once`, {
        retryAfterMs: 250,
      });
    const voted = this.round.some((e) => parts(e).some((m) => m.sessionId === sessionId));
    const working = held.some((l) => l.baseVersion === this.record.version);
    // A session waiting for the open version to close (its vote is in, or its lease is on it)
    // may still compute a copy of someone else's batch: copies never vote, and this is how the
    // configured share of batches gets checked without costing the run a vote.
    if (this.config.strategy.kind !== "asynchronous" && (voted || working)) {
      const copy = this.scheduler.issueCopy(
        sessionId,
        now,
        duration,
        this.record.version,
        this.keeps,
      );
      if (copy) return this.leasePayload(copy);
    }
    // One vote per session per version: a session whose update is already in the open version
    // waits for the next one. Besides fairness, this keeps a fast (or hostile) session from
    // taking every batch of an epoch.
    if (voted)
      return errorPayload(
        "rateLimited",
        "this session's update is in the open version; wait for the next",
        { retryAfterMs: 250 },
      );
    // For the same reason, a second lease on the open version is refused where versions wait
    // for their voters: it could not count in this version and would be stale in the next (a
    // prefetching tab otherwise computes every other batch for nothing).
    if (this.config.strategy.kind !== "asynchronous" && working)
      return errorPayload(
        "rateLimited",
        "this session already works on the open version; wait for the next",
        { retryAfterMs: 250 },
      );
    const lease = this.scheduler.issue(sessionId, now, duration, this.record.version, this.keeps);
    if (!lease)
      return errorPayload(
        "rateLimited",
        "every batch of this epoch is leased or being aggregated; ask again shortly",
        { retryAfterMs: 250 },
      );
    return this.leasePayload(lease);
  }

  /**
   * A lease as it travels. Data by reference: it names where its samples are in the run's
   * shard, which the session fetched once; the batch itself never crosses the wire.
   */
  private leasePayload(lease: Lease): Payload {
    const c = this.config;
    const indices = batchSamples(this.data.trainCount, leaseSize(c), c.seed, lease.batch);
    const offsets = Array.from(indices, (i) => sampleOffset(this.data, c.model, i, lease.epoch));
    return {
      type: "lease",
      leaseId: lease.id,
      baseVersion: lease.baseVersion,
      deadline: lease.deadline,
      innerSteps: this.innerSteps,
      batch: {
        batchId: `${lease.epoch}:${lease.batch}`,
        epoch: lease.epoch,
        index: lease.batch,
        offsets,
      },
    };
  }

  /** An evaluation lease for this session, if contributors are measuring a version. */
  private evaluationLease(s: SessionStats, now: number): Payload | undefined {
    const c = this.contributed;
    if (!c || !s.evaluates) return undefined;
    const leaseId = this.scheduler.newLeaseId();
    const deadline = now + this.config.leaseMs;
    const heldOut = c.offer(s.id, leaseId, deadline);
    if (!heldOut) return undefined;
    return {
      type: "lease",
      leaseId,
      baseVersion: c.job.version,
      deadline,
      innerSteps: 0,
      batch: { batchId: `eval:${c.job.version}`, metadata: {} },
      heldOut,
    };
  }

  /** Whether a copy may be leased on `version`: its parameters are kept. */
  private readonly keeps = (version: number) => this.copyBases.has(version);

  /** The parameters of an older version a copy lease starts from, if kept. */
  copyParameters(version: number): { version: number; tensors: Tensor[] } | undefined {
    const kept = this.copyBases.get(version);
    return kept && { version, tensors: this.tensorsOf(kept) };
  }

  private tensorsOf(parameters: Float32Array): Tensor[] {
    return this.layout.slots.map((slot) => ({
      shape: slot.shape,
      dtype: "float32",
      name: slot.name,
      data: parameters.subarray(slot.offset, slot.offset + slot.size),
    }));
  }

  /** The parameters evaluation leases measure (the version contributors are evaluating). */
  heldOutParameters(): { version: number; tensors: Tensor[] } | undefined {
    const c = this.contributed;
    if (!c) return undefined;
    return { version: c.job.version, tensors: this.tensorsOf(c.job.parameters) };
  }

  /** A contributor's report on an evaluation lease. */
  report(sessionId: string, messageId: string, r: EvaluationReport, now: number): Outgoing[] {
    const s = this.sessions.get(sessionId);
    const c = this.contributed;
    if (!s || s.quarantined) return [];
    if (!c)
      return [
        {
          to: sessionId,
          payload: errorPayload("unknownLease", "no evaluation is being measured by contributors", {
            ref: messageId,
          }),
        },
      ];
    const outcome = c.report(sessionId, r, now);
    if (!outcome.ok) return this.refuse(s, outcome, messageId);
    const counters = this.record.counters;
    counters.evaluationReports = (counters.evaluationReports ?? 0) + 1;
    counters.evaluationDisagreements =
      (counters.evaluationDisagreements ?? 0) + outcome.strikes.length;
    const out: Outgoing[] = [];
    for (const id of outcome.strikes) {
      const other = this.sessions.get(id);
      if (other && this.strike(other))
        out.push({
          to: id,
          payload: errorPayload(
            "quarantined",
            "this session's evaluations disagreed with two others; it is quarantined",
          ),
        });
    }
    if (c.done) {
      this.contributed = undefined;
      out.push(...this.evaluated(c.job, c.result(), now));
    }
    return out;
  }

  // --- updates ----------------------------------------------------------------------------

  /** Checks an update and takes it into the version being gathered; may close that version. */
  submit(sessionId: string, messageId: string, u: GradientUpdate, now: number): Outgoing[] {
    const s = this.sessions.get(sessionId);
    if (!s)
      return [
        {
          to: sessionId,
          payload: errorPayload("notJoined", "join this run first", { ref: messageId }),
        },
      ];
    if (s.quarantined)
      return [
        {
          to: sessionId,
          payload: errorPayload("quarantined", "this session's updates kept failing checks", {
            ref: messageId,
          }),
        },
      ];
    if (!this.active)
      return [
        {
          to: sessionId,
          payload: errorPayload("runNotActive", `the run is ${this.record.state}`, {
            retryAfterMs: 2000,
            ref: messageId,
          }),
        },
      ];
    this.touched.add(sessionId);
    const lease = this.scheduler.get(u.leaseId);
    const context = this.updateContext(sessionId, lease, now);
    if (u.pieceHashes && u.gradients.length === 0)
      return this.declare(s, messageId, u, context, now);
    const checked = checkUpdate(u, context);
    if (!checked.ok) {
      // The session's own lease ends with the refusal, so its batch is handed out again.
      if (lease && lease.sessionId === sessionId) this.revoke(lease.id);
      return this.refuse(s, checked, messageId);
    }
    const l = lease!;
    const out: Outgoing[] = [];
    let wrongOwners: string[] = [];
    if (this.reduce?.has(l.id))
      return this.refuse(
        s,
        { code: "claimMismatch", message: `lease ${l.id} is declared: its group reduces it` },
        messageId,
      );
    if (this.reduce) {
      // After a fallback: the whole update must be the one declared (a member that sent its
      // group different bytes than it sends here is caught), and it may settle a dispute.
      const arrived = this.reduce.arrived(l.id, checked.tensors);
      if (!arrived.matches) {
        this.revoke(l.id);
        return this.refuse(
          s,
          { code: "claimMismatch", message: "the update is not the one this session declared" },
          messageId,
        );
      }
      wrongOwners = arrived.wrong;
    }
    // What the coordinator knows, not what the update says (the two agree, or it was refused).
    const samples = this.leaseSamples(l);
    measureSpeed(s, samples, l, now);
    s.lastSeen = now;
    const batchKey = `${l.epoch}:${l.batch}`;
    if (this.scheduler.accept(l.id) === "duplicate") {
      // A replica (or a late copy of a batch someone else finished): compared, never counted.
      // Acknowledged with the next commit, which writes the credit the comparison gave.
      this.compareCopy(batchKey, l, { sessionId, tensors: checked.tensors, samples });
      this.heldAcks.push({
        to: sessionId,
        payload: { type: "ack", ref: messageId, leaseId: l.id, version: this.record.version },
      });
      return [];
    }
    if (this.config.redundancy > 0)
      this.firstCopies.set(batchKey, { tensors: checked.tensors, sessionId, base: l.baseVersion });
    const stale = this.record.version - u.baseVersion;
    if (this.round.length === 0) this.roundOpenedAt = now;
    this.round.push({
      key: `${String(l.epoch).padStart(6, "0")}:${String(l.batch).padStart(9, "0")}:${l.id}`,
      lease: l,
      sessionId,
      messageId,
      tensors: checked.tensors,
      weight: samples / (1 + stale),
      loss: u.loss,
      samples,
    });
    s.updatesAccepted++;
    this.record.counters.updatesAccepted++;
    // Struck once the update is in (a quarantine ends the sender's live leases, this one too).
    for (const id of wrongOwners)
      out.push(...this.strikeSession(id, "reduced a part of its group's updates wrongly"));
    const target = this.target;
    if (this.voters() >= target) out.push(...this.closeVersion(now));
    return out;
  }

  private updateContext(sessionId: string, lease: Lease | undefined, now: number): UpdateContext {
    return {
      sessionId,
      lease,
      now,
      version: this.record.version,
      strategy: this.config.strategy,
      layout: this.layout,
      maxNorm: this.config.maxUpdateNorm,
      samples: lease ? this.leaseSamples(lease) : 0,
      innerSteps: this.innerSteps,
      copy: lease !== undefined && this.scheduler.hasCopyIn(lease),
    };
  }

  /** Ends a lease without its update; a declaration on it is dropped too. */
  private revoke(leaseId: number): void {
    this.scheduler.revoke(leaseId);
    this.reduce?.drop(leaseId);
  }

  // --- reduction among peers --------------------------------------------------------------

  /**
   * A declaration: the update's claim and its pieces' hashes, instead of the update. It waits
   * for a group (reduce-groups.ts); the acknowledgement comes when the group's update is
   * committed, or a fallback asks for the update itself.
   */
  private declare(
    s: SessionStats,
    messageId: string,
    u: GradientUpdate,
    context: UpdateContext,
    now: number,
  ): Outgoing[] {
    const reduce = this.reduce;
    const lease = context.lease;
    const refusal: Refusal | undefined = !reduce
      ? { code: "unsupportedMessage", message: "this run does not reduce updates among peers" }
      : (checkClaim(u, context) ??
        (u.pieceHashes!.byteLength !== 32 * REDUCE_PIECES
          ? {
              code: "shapeMismatch",
              message: `a declaration carries ${REDUCE_PIECES} hashes of 32 bytes, not ${u.pieceHashes!.byteLength} bytes`,
            }
          : context.copy
            ? { code: "claimMismatch", message: "a copy of a batch is sent whole" }
            : reduce.has(u.leaseId)
              ? { code: "claimMismatch", message: `lease ${u.leaseId} is declared already` }
              : undefined));
    if (refusal) {
      if (lease && lease.sessionId === s.id && !reduce?.has(lease.id)) this.revoke(lease.id);
      return this.refuse(s, refusal, messageId);
    }
    const l = lease!;
    const target = this.target;
    // Nothing more can come for this version once the declared and the taken make the target:
    // the group forms now rather than after GROUP_WAIT_MS.
    const last = this.voters() + reduce!.declaredCount + 1 >= target;
    const d: Declaration = {
      sessionId: s.id,
      messageId,
      lease: l,
      samples: this.leaseSamples(l),
      loss: u.loss,
      pieceHashes: u.pieceHashes!.slice(),
    };
    // A session whose peer transfers keep failing (no route for UDP) is not grouped: its
    // declaration falls back at once, and costs no group a fallback.
    const reachable = this.parameterSources.reachable(s.id);
    return this.planned(reduce!.declare(d, now, last, reachable));
  }

  /** Sealed groups: a plan to each member (a group of one falls back at once). */
  private planned(groups: Group[]): Outgoing[] {
    const out: Outgoing[] = [];
    for (const group of groups) {
      if (group.members.length < 2) {
        out.push(
          ...this.fellBack(
            this.reduce!.fallBack(
              group,
              "no group to reduce with (alone, or unreachable over WebRTC)",
            ),
          ),
        );
        continue;
      }
      const plan = this.reduce!.plan(group);
      for (const m of group.members) {
        // The lease outlives the reduction, so that a fallback's whole update is still on time.
        m.lease.deadline = Math.max(m.lease.deadline, group.deadline + FALLBACK_GRACE_MS);
        out.push({ to: m.sessionId, payload: plan });
      }
    }
    return out;
  }

  /** An owner's reduced part of its group's updates. */
  reducedPart(
    sessionId: string,
    messageId: string,
    p: Extract<Payload, { type: "reducedPart" }>,
    now: number,
  ): Outgoing[] {
    const s = this.sessions.get(sessionId);
    if (!s || s.quarantined) return [];
    if (!this.reduce)
      return this.refuse(
        s,
        { code: "unsupportedMessage", message: "this run does not reduce updates among peers" },
        messageId,
      );
    const members = this.reduce.reducing.get(p.group)?.members.map((m) => m.sessionId) ?? [];
    const r = this.reduce.part(sessionId, p);
    if ("refused" in r)
      return [
        { to: sessionId, payload: errorPayload("unknownLease", r.refused, { ref: messageId }) },
      ];
    // Transfers that did not come count as the parameter frames' do: a session that keeps
    // failing them (no route for UDP) is left out of transfers and groups.
    for (const id of p.missing)
      if (members.includes(id)) this.parameterSources.undelivered(id, sessionId);
    const out: Outgoing[] = [];
    for (const id of r.accused)
      out.push(
        ...this.strikeSession(id, "sent its group bytes that did not match its declaration"),
      );
    if (r.outcome) out.push(...this.settled(r.outcome, now));
    return out;
  }

  /** A group's outcome: its reduced update into the open version, or its members fall back. */
  private settled(o: GroupOutcome, now: number): Outgoing[] {
    if (o.kind === "fallback") return this.fellBack(o);
    const group = o.group;
    const live = group.members.filter((m) => this.scheduler.get(m.lease.id) === m.lease);
    if (group.version !== this.record.version) {
      for (const m of live) this.revoke(m.lease.id);
      return live.map((m) => ({
        to: m.sessionId,
        payload: errorPayload(
          "staleVersion",
          `the group reduced version ${group.version}; the run is at ${this.record.version}`,
          { ref: m.messageId },
        ),
      }));
    }
    // A member that left (its lease went back) must not be counted by its group too.
    if (live.length < group.members.length)
      return this.fellBack(
        this.reduce!.fallBack(group, "a member left before its group's update was taken"),
      );
    const sum = sumOfSquares(o.update);
    // The mean of updates within the bound is within it: a group's update beyond it, or not
    // finite, is checked member by member instead.
    if (!Number.isFinite(sum) || Math.sqrt(sum) > this.config.maxUpdateNorm)
      return this.fellBack(this.reduce!.fallBack(group, "the group's update is out of bounds"));
    const counters = this.record.counters;
    counters.groupsReduced = (counters.groupsReduced ?? 0) + 1;
    let samples = 0;
    let loss = 0;
    for (const m of group.members) {
      this.scheduler.accept(m.lease.id);
      const ms = this.sessions.get(m.sessionId);
      if (ms) {
        measureSpeed(ms, m.samples, m.lease, now);
        ms.updatesAccepted++;
        this.touched.add(ms.id);
      }
      counters.updatesAccepted++;
      samples += m.samples;
      loss += m.samples * m.loss;
    }
    this.peerReduceTraffic(group);
    for (const m of group.members) this.parameterSources.delivered(m.sessionId, m.sessionId);
    const first = group.members[0]!.lease;
    if (this.round.length === 0) this.roundOpenedAt = now;
    this.round.push({
      key: `${String(first.epoch).padStart(6, "0")}:${String(first.batch).padStart(9, "0")}:${first.id}`,
      lease: first,
      sessionId: `group:${group.id}`,
      messageId: "",
      tensors: this.layout.slots.map((slot) =>
        o.update.subarray(slot.offset, slot.offset + slot.size),
      ),
      weight: samples,
      loss: loss / samples,
      samples,
      members: group.members,
    });
    const target = this.target;
    return this.voters() >= target ? this.closeVersion(now) : [];
  }

  /** Every live member of a group that will not be reduced is asked for its update whole. */
  private fellBack(o: Extract<GroupOutcome, { kind: "fallback" }>): Outgoing[] {
    const counters = this.record.counters;
    counters.groupFallbacks = (counters.groupFallbacks ?? 0) + 1;
    return o.group.members
      .filter((m) => this.scheduler.get(m.lease.id) === m.lease)
      .map((m) => ({
        to: m.sessionId,
        payload: errorPayload("reduceFallback", `${o.why}: send the update itself`, {
          ref: m.messageId,
        }),
      }));
  }

  /**
   * The bytes a reduced group moved between its members instead of through here: each part's two
   * owners fetched it from every other member.
   */
  private peerReduceTraffic(group: Group): void {
    const g = group.members.length;
    const n = this.layout.size;
    for (const [i, m] of group.members.entries()) {
      const s = this.sessions.get(m.sessionId);
      if (!s) continue;
      const own = [i, (i + g - 1) % g].reduce((a, p) => {
        const r = partRange(n, g, p);
        return a + 4 * (r.end - r.start);
      }, 0);
      const received = (g - 1) * own;
      // Each part it does not own goes to two owners; each it owns, to the other one.
      const sent = 4 * 2 * n - own;
      s.peerBytesIn = (s.peerBytesIn ?? 0) + received;
      s.peerBytesOut = (s.peerBytesOut ?? 0) + sent;
      this.traffic.peerBytes += received;
    }
  }

  /**
   * A second (or third) copy of a batch, against the copies before it from the same version.
   * Two that agree: the replica earns its samples and both are verified. Two that disagree
   * cannot say which is wrong, so the batch is disputed and a third session computes it; the
   * copies that disagree with it get a strike (freeloaders, caught at redundancy's rate), the
   * one that agrees is verified. Three different answers strike no one.
   */
  private compareCopy(
    batchKey: string,
    l: Lease,
    copy: { sessionId: string; tensors: Float32Array[]; samples: number },
  ): void {
    const counters = this.record.counters;
    const s = this.sessions.get(copy.sessionId)!;
    const dispute = this.disputes.get(batchKey);
    if (dispute && dispute.base === l.baseVersion) {
      this.disputes.delete(batchKey);
      const agreeing = dispute.copies.filter(
        (c) => relativeDifference(c.tensors, copy.tensors) <= REPLICA_TOLERANCE,
      );
      s.replicasChecked = (s.replicasChecked ?? 0) + 1;
      if (agreeing.length === 0) return;
      counters.replicaDisputesSettled = (counters.replicaDisputesSettled ?? 0) + 1;
      earn(s, copy.samples);
      verify(s, copy.samples);
      for (const [i, c] of dispute.copies.entries()) {
        const other = this.sessions.get(c.sessionId);
        if (!other) continue;
        this.touched.add(other.id);
        if (agreeing.includes(c)) {
          // The replica (the second copy) earns now; the first copy earns when it is committed.
          if (i > 0) earn(other, copy.samples);
          verify(other, copy.samples);
          continue;
        }
        this.strike(other);
        // A wrong first copy still in the open version earns nothing when it commits; one
        // already committed gives back what it earned.
        if (i === 0) {
          const open = this.round.filter(
            (e) => e.sessionId === c.sessionId && `${e.lease.epoch}:${e.lease.batch}` === batchKey,
          );
          for (const e of open) e.disproved = true;
          if (open.length === 0 && this.scheduler.committed(l.epoch, l.batch))
            unearn(other, copy.samples);
        }
      }
      return;
    }
    const first = this.firstCopies.get(batchKey);
    this.firstCopies.delete(batchKey);
    if (!first || first.base !== l.baseVersion) return;
    const other = this.sessions.get(first.sessionId);
    if (other) this.touched.add(other.id);
    s.replicasChecked = (s.replicasChecked ?? 0) + 1;
    if (other) other.replicasChecked = (other.replicasChecked ?? 0) + 1;
    counters.replicaComparisons = (counters.replicaComparisons ?? 0) + 1;
    if (relativeDifference(first.tensors, copy.tensors) <= REPLICA_TOLERANCE) {
      earn(s, copy.samples);
      verify(s, copy.samples);
      if (other) verify(other, copy.samples);
      return;
    }
    counters.replicaDisputes = (counters.replicaDisputes ?? 0) + 1;
    this.disputes.set(batchKey, {
      base: l.baseVersion,
      copies: [{ sessionId: first.sessionId, tensors: first.tensors }, copy],
    });
    this.scheduler.wantCopy(l.epoch, l.batch, l.baseVersion, [first.sessionId, copy.sessionId]);
  }

  /** Expires leases and closes a version whose straggler deadline passed. */
  tick(now: number): Outgoing[] {
    if (!this.active) return [];
    this.expire(now);
    this.contributed?.expire(now);
    const st = this.config.strategy;
    // When every batch is leased out or waiting in this version, nothing more can arrive for
    // it: it closes with what it has (else it and the epoch would wait for each other forever).
    const out: Outgoing[] = [];
    if (this.reduce) {
      out.push(...this.planned(this.reduce.due(now)));
      for (const o of this.reduce.expire(now)) out.push(...this.settled(o, now));
    }
    const starved =
      this.round.length > 0 && this.scheduler.freeCount + this.scheduler.liveCount === 0;
    // A group reducing (or gathering) is waited for at the straggler deadline: its time is
    // bounded (GROUP_WAIT_MS, REDUCE_MS), and its members' votes would go stale.
    const due =
      st.kind !== "asynchronous" &&
      this.voters() >= this.quorum() &&
      now - this.roundOpenedAt >= st.stragglerMs &&
      !this.reduce?.busy;
    if (this.active && this.round.length > 0 && (starved || due))
      out.push(...this.closeVersion(now));
    return out;
  }

  /** Sessions with an update in the open version: each has one vote in the aggregate. */
  private voters(): number {
    return new Set(this.round.flatMap((e) => parts(e).map((m) => m.sessionId))).size;
  }

  /**
   * The fewest voters a version may close with at its straggler deadline. A plain mean takes
   * what arrived. A robust aggregator needs enough to out-vote the share of attackers it is set
   * for (`trim`): a version of two updates, one of them hostile, could not be defended.
   */
  quorum(): number {
    const st = this.config.strategy;
    const { kind, trim } = this.config.aggregation;
    if (kind === "mean" || st.kind === "asynchronous") return 1;
    return Math.min(st.targetUpdates, Math.max(3, Math.ceil((1 - trim) * st.targetUpdates)));
  }

  // --- control ----------------------------------------------------------------------------

  setState(state: RunState, now: number): Outgoing[] {
    const from = this.record.state;
    if (from === state) return [];
    if (from === "stopped" || from === "finished")
      throw new Error(`the run is ${from}; it cannot become ${state}`);
    this.record.state = state;
    this.record.updatedAt = now;
    if (state !== "running") {
      const out = this.flush(now);
      for (const l of this.scheduler.liveLeases()) this.scheduler.revoke(l.id);
      // The version it stands at is evaluated, so that what the researcher sees (and downloads)
      // is described by its own loss, not an older version's.
      const evaluated = this.evaluating ?? this.record.evaluation?.version ?? -1;
      if (evaluated < this.record.version) this.evaluationDue = true;
      this.store.updateRun(this.record);
      return [
        ...out,
        {
          to: "*",
          payload: errorPayload("runNotActive", `the run is ${state}`, {
            retryAfterMs: state === "paused" ? 2000 : 0,
          }),
        },
      ];
    }
    this.store.updateRun(this.record);
    this.lastCommitAt = now;
    return [];
  }

  /**
   * Closes the open version early (a pause, a shutdown) when it has a quorum; otherwise its
   * batches are simply handed out again later. Either way nothing acknowledged is lost.
   */
  flush(now: number): Outgoing[] {
    const out: Outgoing[] = [];
    if (this.round.length > 0 && this.voters() >= this.quorum())
      out.push(...this.closeVersion(now, true));
    else if (this.round.length > 0) {
      this.scheduler.unpend(this.round.map((e) => e.lease));
      this.round = [];
    }
    // Copies compared since the last commit: their credit is written, then acknowledged.
    if (this.heldAcks.length > 0 || this.touched.size > 0) {
      this.store.updateSessions(this.id, this.takeTouched());
      out.push(...this.heldAcks);
      this.heldAcks = [];
    }
    return out;
  }

  /**
   * Status for the API and the pages. Anyone may read the public view: contributors appear only
   * as the leaderboard does (a chosen name and verified credit). The admin view adds every
   * session's row (client, speed, counts, health) for the dashboard.
   */
  status(now: number, view: "public" | "admin" = "public") {
    const r = this.record;
    let connected = 0;
    for (const s of this.sessions.values()) if (s.connected) connected++;
    const common = {
      id: r.id,
      name: r.config.name,
      state: r.state,
      version: r.version,
      epoch: this.scheduler.epoch,
      batchesDone: this.scheduler.doneCount,
      batchesPerEpoch: this.scheduler.batchCount,
      liveLeases: this.scheduler.liveCount,
      evaluation: r.evaluation ?? null,
      counters: r.counters,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      config: r.config,
      contributors: { connected, total: this.sessions.size },
      leaderboard: leaderboard(this.sessions.values()),
      /** Bytes through the coordinator and between peers, with the samples they carried. */
      traffic: { ...this.traffic, samples: r.counters.samples },
      /** Reduction among peers: groups reducing now, with who has not sent its part yet. */
      ...(this.reduce
        ? {
            reducing: [...this.reduce.reducing.values()].map((g) => ({
              group: g.id,
              version: g.version,
              members: g.members.map((m) => m.sessionId),
            })),
          }
        : {}),
    };
    if (view === "public") return common;
    return {
      ...common,
      workers: [...this.sessions.values()].map((s) => ({
        ...s,
        lastSeenMsAgo: now - s.lastSeen,
      })),
    };
  }

  /**
   * One page of the admin's workers table, with the whole crowd summarized: a public network's
   * run has thousands of sessions, and a page of them is what a person reads. Connected sessions
   * first, then by credit, then by id, so pages are stable while nothing changes.
   */
  workersPage(now: number, query: WorkersQuery = {}): WorkersPage {
    const summary = { total: 0, connected: 0, quarantined: 0, samplesPerSecond: 0 };
    const show = query.show ?? "all";
    const matching: SessionStats[] = [];
    for (const s of this.sessions.values()) {
      summary.total++;
      if (s.quarantined) summary.quarantined++;
      if (s.connected) {
        summary.connected++;
        summary.samplesPerSecond += s.samplesPerSecond;
      }
      if (show === "all" || (show === "connected" ? s.connected : s.quarantined)) matching.push(s);
    }
    matching.sort(
      (a, b) =>
        Number(b.connected) - Number(a.connected) ||
        (b.credit ?? 0) - (a.credit ?? 0) ||
        (a.id < b.id ? -1 : 1),
    );
    const limit = Math.min(WORKERS_PAGE_MAX, Math.max(1, Math.floor(query.limit ?? 50) || 50));
    const offset = Math.max(0, Math.floor(query.offset ?? 0) || 0);
    return {
      summary,
      show,
      matching: matching.length,
      offset,
      limit,
      workers: matching
        .slice(offset, offset + limit)
        .map((s) => ({ ...s, lastSeenMsAgo: now - s.lastSeen })),
    };
  }

  // --- internals --------------------------------------------------------------------------

  /** The local steps each lease asks for: the strategy's inner steps, or one. */
  /** Voters a version closes with: the buffer (asynchronous) or the target (the others). */
  private get target(): number {
    const st = this.config.strategy;
    return st.kind === "asynchronous" ? st.buffer : st.targetUpdates;
  }

  private get innerSteps(): number {
    const st = this.config.strategy;
    return st.kind === "localSgd" ? st.innerSteps : 1;
  }

  /** The samples of a lease's batch (the last batch of an epoch may be short). */
  private leaseSamples(lease: Lease): number {
    const size = leaseSize(this.config);
    return Math.max(0, Math.min(size, this.data.trainCount - lease.batch * size));
  }

  private expire(now: number): void {
    const expired = this.scheduler.expire(now);
    for (const l of expired) this.reduce?.drop(l.id);
    this.record.counters.leaseReissues += expired.length;
  }

  private refuse(s: SessionStats, r: Refusal, ref: string): Outgoing[] {
    s.updatesRefused++;
    const counts = this.record.counters.updatesRefused;
    counts[r.code] = (counts[r.code] ?? 0) + 1;
    const out: Outgoing[] = [{ to: s.id, payload: errorPayload(r.code, r.message, { ref }) }];
    if (STRIKES.has(r.code) && this.strike(s))
      out.push({
        to: s.id,
        payload: errorPayload(
          "quarantined",
          "this session's updates kept failing checks; it is quarantined",
        ),
      });
    return out;
  }

  /** A strike for something the coordinator saw outside an update (a peer's bad bytes). */
  strikeSession(sessionId: string, why: string): Outgoing[] {
    const s = this.sessions.get(sessionId);
    if (!s || !this.strike(s)) return [];
    return [
      {
        to: sessionId,
        payload: errorPayload("quarantined", `this session ${why}; it is quarantined`),
      },
    ];
  }

  /** Counts a strike; quarantines the session (and ends its leases) at the run's limit. */
  private strike(s: SessionStats): boolean {
    this.touched.add(s.id);
    s.strikes++;
    if (s.quarantined || s.strikes < this.config.quarantineAfter) return false;
    s.quarantined = true;
    forfeit(s);
    this.scheduler.release(s.id);
    this.contributed?.release(s.id);
    return true;
  }

  /** The stats of the sessions touched since the last write, for the Store; forgets them. */
  private takeTouched(): SessionStats[] {
    const stats: SessionStats[] = [];
    for (const id of this.touched) {
      const s = this.sessions.get(id);
      if (s) stats.push(s);
    }
    this.touched.clear();
    return stats;
  }

  /** Aggregates the gathered updates, steps the optimizer, commits, then announces. */
  private closeVersion(now: number, pausing = false): Outgoing[] {
    const round = this.round;
    this.round = [];
    const c = this.config;
    // Buckets are shuffled afresh each version (seeded by the run, so every replay agrees).
    const aggregation = {
      ...c.aggregation,
      seed: (c.seed ^ Math.imul(this.record.version + 1, 0x9e3779b1)) >>> 0,
    };
    // A bad step changes nothing (ParameterSlice); after a good one, `before` is the last
    // version's parameters until the next step overwrites them.
    const before = this.parameters;
    if (!this.slice.step(votes(round), aggregation, c.optimizer)) {
      // Cannot happen with checked updates and a sane learning rate; if it does, the step is
      // undone and its batches are free again, rather than a NaN reaching the parameters.
      this.scheduler.unpend(round.flatMap((e) => parts(e).map((m) => m.lease)));
      return round.flatMap(parts).map((m) => ({
        to: m.sessionId,
        payload: errorPayload("internal", "the aggregated step was not finite and was discarded", {
          ref: m.messageId,
        }),
      }));
    }
    const r = this.record;
    r.version++;
    r.updatedAt = now;
    const samples = round.reduce((a, e) => a + e.samples, 0);
    r.counters.samples += samples;
    r.counters.batchCommits ??= {};
    const commits = r.counters.batchCommits;
    // The round holds only first copies (a duplicate is acknowledged and compared, never added).
    for (const e of round)
      for (const m of parts(e)) {
        commits[m.lease.epoch] = (commits[m.lease.epoch] ?? 0) + 1;
        const contributor = this.sessions.get(m.sessionId);
        if (contributor && !e.disproved) earn(contributor, m.samples);
      }
    const epochBefore = this.scheduler.epoch;
    this.scheduler.commit(round.flatMap((e) => parts(e).map((m) => m.lease)));
    const epochDone = this.scheduler.epoch > epochBefore;
    const metric: MetricPoint = {
      runId: r.id,
      version: r.version,
      epoch: this.scheduler.epoch,
      at: now,
      trainLoss: round.reduce((a, e) => a + e.loss, 0) / round.length,
      samplesPerSecond: (1000 * samples) / Math.max(1, now - this.lastCommitAt),
      workers: [...this.sessions.values()].filter((s) => s.connected && !s.quarantined).length,
    };
    this.lastCommitAt = now;
    // The evaluation runs after the commit, off this path (see evaluation.ts); its result lands
    // with `evaluated`, which also applies the accuracy and loss targets.
    const evaluate = r.version % c.evaluateEvery === 0 || epochDone || pausing;
    const stop = c.stop;
    const reached =
      (stop.epochs > 0 && this.scheduler.epoch >= stop.epochs) ||
      (stop.versions > 0 && r.version >= stop.versions);
    if (reached && !pausing) r.state = "finished";
    this.store.commitVersion(
      {
        record: r,
        parameters: this.parameters,
        optimizer: this.optimizer,
        progress: this.scheduler.progress(),
        sessions: this.takeTouched(),
      },
      metric,
    );
    // Committed: now it may be told, and so may the copies compared since the last commit.
    const out: Outgoing[] = round.flatMap(parts).map((m) => ({
      to: m.sessionId,
      payload: { type: "ack", ref: m.messageId, leaseId: m.lease.id, version: r.version },
    }));
    out.push(...this.heldAcks);
    this.heldAcks = [];
    if (r.state === "finished") {
      for (const l of this.scheduler.liveLeases()) this.scheduler.revoke(l.id);
      out.push({
        to: "*",
        payload: errorPayload("runNotActive", "the run finished: its stop condition was reached"),
      });
    }
    // A copy starts from its first copy's version, whose parameters are kept while a copy may
    // still want them (at most COPY_BASES versions, the oldest let go first). A copy that can no
    // longer be computed leaves its first copy unchecked, and an unsettled dispute lapses.
    if (c.redundancy > 0) {
      // `before` becomes the spare the next step overwrites: the kept base is a copy.
      this.copyBases.set(r.version - 1, before.slice());
      for (const v of [...this.copyBases.keys()])
        if (!this.scheduler.needs(v)) this.copyBases.delete(v);
      while (this.copyBases.size > COPY_BASES)
        this.copyBases.delete(Math.min(...this.copyBases.keys()));
    }
    const kept = (v: number) => v === r.version || this.copyBases.has(v);
    for (const [key, d] of this.disputes) if (!kept(d.base)) this.disputes.delete(key);
    for (const [key, f] of this.firstCopies) if (!kept(f.base)) this.firstCopies.delete(key);
    this.scheduler.forgetCopies(kept);
    if (this.reduce) {
      this.reduce.forget(r.version);
      for (const d of this.reduce.takeOpen()) {
        this.scheduler.revoke(d.lease.id);
        out.push({
          to: d.sessionId,
          payload: errorPayload(
            "staleVersion",
            `version ${r.version - 1} closed before a group formed for this declaration`,
            { ref: d.messageId },
          ),
        });
      }
    }
    if (evaluate || r.state === "finished") this.evaluationDue = true;
    return out;
  }

  // --- evaluation -------------------------------------------------------------------------

  /** A version waits to be evaluated (the latest committed one is, when its turn comes). */
  private evaluationDue = false;
  /** The version being evaluated now, if any. */
  private evaluating: number | undefined;

  /** An evaluation contributors are measuring (evaluation leases), if any. */
  private contributed: ContributorEvaluation | undefined;

  /**
   * The evaluation the coordinator should run now, if one is due and none is running. Where the
   * run has contributors measure it and two sessions could, it is handed to evaluation leases
   * instead (and nothing is returned); one they cannot finish (no agreement, past its
   * deadline, the run paused or stopped) comes back here for the coordinator to run.
   */
  takeEvaluation(now: number): EvaluationJob | undefined {
    const c = this.contributed;
    if (c && (c.failed || now > c.deadline || !this.active)) {
      this.contributed = undefined;
      const counters = this.record.counters;
      counters.evaluationFallbacks = (counters.evaluationFallbacks ?? 0) + 1;
      this.tookBack = c.job.version;
      return c.job;
    }
    if (!this.evaluationDue || this.evaluating !== undefined) return undefined;
    this.evaluationDue = false;
    this.evaluating = this.record.version;
    const job: EvaluationJob = {
      runId: this.id,
      version: this.record.version,
      model: this.config.model,
      parameters: this.parameters.slice(),
      data: this.data,
      seed: this.config.seed,
    };
    const evaluators = [...this.sessions.values()].filter(
      (s) => s.connected && s.evaluates && !s.quarantined,
    ).length;
    if (this.config.evaluateBy === "contributors" && this.active && evaluators >= 2) {
      const parts = evaluationParts(job, WINDOWS_PER_LEASE);
      this.contributed = new ContributorEvaluation(job, parts, now + 2 * this.config.leaseMs);
      return undefined;
    }
    return job;
  }

  /** The version the coordinator took back from contributors, to say so with its result. */
  private tookBack = -1;

  /**
   * An evaluation's result (or its failure): written to the Store with a metric point, and the
   * run finishes if it reached its accuracy or loss target.
   */
  evaluated(job: EvaluationJob, result: EvaluationResult | Error, now: number): Outgoing[] {
    this.evaluating = undefined;
    if (result instanceof Error) return [];
    if (job.version === this.tookBack)
      result = {
        ...result,
        where: `${result.where ?? "by the coordinator"} (contributors could not finish it)`,
      };
    const r = this.record;
    r.evaluation = {
      version: job.version,
      loss: result.loss,
      accuracy: result.accuracy,
      at: now,
      measured: result.measured,
      ...(result.where !== undefined ? { where: result.where } : {}),
      ...(result.sample !== undefined ? { sample: result.sample } : {}),
    };
    const last = this.store.metrics(r.id, 1)[0];
    const point: MetricPoint = {
      runId: r.id,
      version: job.version,
      epoch: this.scheduler.epoch,
      at: now,
      trainLoss: last?.trainLoss ?? result.loss,
      samplesPerSecond: last?.samplesPerSecond ?? 0,
      workers: last?.workers ?? 0,
      testLoss: result.loss,
      testAccuracy: result.accuracy,
    };
    const stop = this.config.stop;
    const reached =
      (stop.targetAccuracy > 0 && result.accuracy >= stop.targetAccuracy) ||
      (stop.targetLoss > 0 && result.loss <= stop.targetLoss);
    const out: Outgoing[] = [];
    if (reached && r.state === "running") {
      r.state = "finished";
      r.updatedAt = now;
      for (const l of this.scheduler.liveLeases()) this.scheduler.revoke(l.id);
      // What was gathered for the open version is let go, as on a stop: it was never
      // acknowledged. The run keeps its latest committed version (the evaluated one, or later).
      this.scheduler.unpend(this.round.map((e) => e.lease));
      this.round = [];
      out.push({
        to: "*",
        payload: errorPayload("runNotActive", "the run finished: its stop condition was reached"),
      });
      // Versions committed while this one was evaluated: the one the run ends with is
      // evaluated too, so that its last evaluation describes the parameters it keeps.
      if (job.version < r.version) this.evaluationDue = true;
    }
    this.store.recordEvaluation(r, point);
    return out;
  }
}

/** A session's speed, from its lease to its accepted work (a moving average): its next deadline. */
function measureSpeed(s: SessionStats, samples: number, lease: Lease, now: number): void {
  const speed = (1000 * samples) / Math.max(1, now - lease.issuedAt);
  s.samplesPerSecond = s.samplesPerSecond === 0 ? speed : 0.7 * s.samplesPerSecond + 0.3 * speed;
}

/**
 * One vote per session: a session's updates in a version are averaged (in key order, weighted
 * by samples) before the robust aggregator sees them, so a fast or hostile session cannot fill
 * a version with many votes.
 */
function votes(round: readonly Contribution[]): WeightedUpdate[] {
  const bySession = new Map<string, Contribution[]>();
  for (const e of round) bySession.set(e.sessionId, [...(bySession.get(e.sessionId) ?? []), e]);
  return [...bySession.values()].map((mine) => {
    mine.sort((a, b) => (a.key < b.key ? -1 : 1));
    if (mine.length === 1)
      return { key: mine[0]!.key, tensors: mine[0]!.tensors, weight: mine[0]!.weight };
    const total = mine.reduce((w, e) => w + e.weight, 0);
    const tensors = mine[0]!.tensors.map((t, ti) => {
      const acc = new Float64Array(t.length);
      for (const e of mine) {
        const f = e.weight / total;
        const u = e.tensors[ti]!;
        for (let i = 0; i < acc.length; i++) acc[i]! += f * u[i]!;
      }
      return Float32Array.from(acc);
    });
    return { key: mine[0]!.key, tensors, weight: total };
  });
}

/**
 * The samples one lease hands out: a batch, or for local SGD a batch per inner step (DiLoCo's
 * inner steps each see fresh data; the lease names all of them by offset, in step order).
 */
export function leaseSize(c: RunConfig): number {
  return c.strategy.kind === "localSgd" ? c.batchSize * c.strategy.innerSteps : c.batchSize;
}

function relativeDifference(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let diff = 0;
  for (const [i, t] of a.entries()) {
    const u = b[i]!;
    for (let j = 0; j < t.length; j++) diff += (t[j]! - u[j]!) ** 2;
  }
  return Math.sqrt(diff) / Math.max(updateNorm(a), updateNorm(b), 1e-12);
}
