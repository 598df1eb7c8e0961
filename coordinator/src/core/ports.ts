// What the core needs from its runtime. The Node server and the Durable Object each implement
// these; the core imports nothing else of theirs. The Store is synchronous on purpose: SQLite
// through better-sqlite3 and a Durable Object's storage.sql both are, and a version must be
// committed before anyone hears of it without an await in between.
import type { ClientInfo } from "@pangea/shared";
import type { RunConfig } from "./run-config.ts";
import type { EpochProgress } from "./scheduler.ts";
import type { OptimizerState } from "./server-optimizer.ts";

export type RunState = "created" | "running" | "paused" | "stopped" | "finished";

/** Counters kept with the run (the Prometheus endpoint and the dashboard read them). */
export interface RunCounters {
  updatesAccepted: number;
  /** Refused updates by ErrorCode. */
  updatesRefused: Record<string, number>;
  leaseReissues: number;
  samples: number;
  /**
   * Accepted updates committed per epoch (first copies only). Kept apart from the scheduler's
   * own bookkeeping, so that a batch counted twice, or lost, shows as an epoch whose count is
   * not its batch count.
   */
  batchCommits?: Record<string, number>;
  /** Evaluation leases' reports taken, reports that disagreed with two that agreed, and
   * evaluations the coordinator took back from contributors (evaluation-leases.ts). */
  evaluationReports?: number;
  evaluationDisagreements?: number;
  evaluationFallbacks?: number;
  /** Redundant batches whose two copies were compared; of those, disputes (they disagreed, and
   * a third copy was asked for); and disputes a third copy settled. */
  replicaComparisons?: number;
  replicaDisputes?: number;
  replicaDisputesSettled?: number;
  /** Groups of declared updates reduced among peers and taken, and groups that fell back to
   * whole updates, by why (reduce-groups.ts). */
  groupsReduced?: number;
  groupFallbacks?: number;
}

export interface RunRecord {
  id: string;
  config: RunConfig;
  state: RunState;
  version: number;
  createdAt: number;
  updatedAt: number;
  counters: RunCounters;
  /** The latest evaluation, if any (the coordinator's own: see evaluation.ts). */
  evaluation?: {
    version: number;
    /** Held-out loss in nats (per character, for text). */
    loss: number;
    accuracy: number;
    at: number;
    /** What was measured, in words. */
    measured?: string;
    /** How the coordinator ran it ("on a worker thread, off its event loop"), in words. */
    where?: string;
    /** Text generated from that version (language models). */
    sample?: string;
  };
}

/** Everything a run needs to resume at a committed version. */
export interface RunSnapshot {
  record: RunRecord;
  parameters: Float32Array;
  optimizer: OptimizerState;
  progress: EpochProgress;
  /**
   * With a commit: the counts of the run's sessions that changed since the last one (their
   * credit among them), written in the same transaction, so what a commit acknowledged is
   * credited after a crash too. Sessions not saved before are left alone.
   */
  sessions?: SessionStats[];
}

export interface MetricPoint {
  runId: string;
  version: number;
  epoch: number;
  at: number;
  /** The coordinator's own evaluation on held-out data (absent between evaluations). */
  testLoss?: number;
  testAccuracy?: number;
  /** Mean of the workers' claimed training loss over the version's updates. */
  trainLoss: number;
  samplesPerSecond: number;
  workers: number;
}

/** A session's standing in its run: what the workers table shows, and whether it is trusted. */
export interface SessionStats {
  id: string;
  client: ClientInfo;
  joinedAt: number;
  lastSeen: number;
  connected: boolean;
  /** Measured from lease to accepted update (samples × inner steps per second); 0 = unknown. */
  samplesPerSecond: number;
  updatesAccepted: number;
  updatesRefused: number;
  strikes: number;
  quarantined: boolean;
  /** It said it can take evaluation leases. */
  evaluates?: boolean;
  /** The leaderboard name its visitor chose (credit.ts: displayName); absent = anonymous. */
  name?: string;
  /** Samples credited: its accepted, committed updates' leases (credit.ts). */
  credit?: number;
  /** Of the credit, samples whose batch a second session computed with an agreeing result. */
  verifiedCredit?: number;
  /** Its updates that redundancy compared with another session's copy. */
  replicasChecked?: number;
  /** WebSocket bytes from and to it (this process's, not stored across restarts). */
  bytesIn?: number;
  bytesOut?: number;
  /** Parameter-frame bytes it fetched from peers, and served to peers, instead of the coordinator. */
  peerBytesIn?: number;
  peerBytesOut?: number;
}

/** A session as stored: its token resumes it, and its quarantine outlives a restart. */
export interface SessionRecord {
  runId: string;
  token: string;
  stats: SessionStats;
}

export interface Store {
  listRuns(): RunRecord[];
  loadRun(id: string): RunSnapshot | undefined;
  /** Writes a new run at version 0. */
  createRun(snapshot: RunSnapshot): void;
  /** Atomically replaces the run's row, parameters, optimizer state and progress; adds a metric. */
  commitVersion(snapshot: RunSnapshot, metric?: MetricPoint): void;
  /** Changes only the run's row (state, counters). */
  updateRun(record: RunRecord): void;
  /** An evaluation finished: the run's row (which holds it) and its metric point, together. */
  recordEvaluation(record: RunRecord, point: MetricPoint): void;
  /** The run's metric history, oldest first, at most `limit` points (the latest ones). */
  metrics(runId: string, limit?: number): MetricPoint[];
  /**
   * Writes (or replaces) a session: on join, on leave and on quarantine; its counts are
   * written again with each commit that changed them.
   */
  saveSession(session: SessionRecord): void;
  /** The counts of sessions saved before (see RunSnapshot.sessions), outside a commit. */
  updateSessions(runId: string, stats: SessionStats[]): void;
  /** The run's sessions (every one it has had). */
  sessions(runId: string): SessionRecord[];
  /** The session a token resumes, from any run, if it was ever saved. */
  sessionByToken(token: string): SessionRecord | undefined;
}

/** One connected tab or worker, as the runtime's socket. */
export interface Peer {
  send(frame: Uint8Array): void;
  /** Closes the connection with a WebSocket close code and a reason. */
  close(code: number, reason: string): void;
  /** Bytes queued and not yet sent, where the runtime can tell (for backpressure). */
  bufferedAmount(): number;
  /**
   * The address the connection came from, as the runtime knows it (the socket's remote address
   * on Node, the CF-Connecting-IP header on the edge): join limits are counted per address.
   */
  address?: string;
  /**
   * Told the session this connection now speaks for. A runtime that sleeps between events (a
   * Durable Object's hibernating WebSockets) keeps it with the socket, to `attach` it on waking.
   */
  identify?(sessionId: string, token: string): void;
}

export interface Clock {
  now(): number;
}
