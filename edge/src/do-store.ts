// The core's Store on a Durable Object's SQLite storage (`ctx.storage.sql`), which is synchronous
// like the port. Inside a DO every call is part of the event's implicit transaction, and the
// output gate holds outgoing messages until the write is durable, so commit-before-announce holds
// here as on Node.
//
// Group commit (the run object's): each version rewrote the parameters and both moments whole
// (1.2 MB for MNIST, a fifth of a busy object's time), though the next version replaces them. So
// writes wait, the newest snapshot per run, for a flush a moment later (a timer, a read, an HTTP
// answer), and everything the coordinator sends meanwhile waits for that flush (CommitGate, as
// Node's SqliteStore): its sends then leave after the flush's writes, which the output gate holds
// them behind until durable. An object that dies first loses only writes nobody was told of.
//
// Rows stay under the platform's 2 MB: parameters and optimizer moments are split into chunks.
import type { CommitGate } from "@pangea/coordinator/core";
import type {
  MetricPoint,
  RunRecord,
  RunSnapshot,
  SessionRecord,
  SessionStats,
  Store,
} from "@pangea/coordinator/ports";

/** Floats per stored chunk: 256 Ki floats, 1 MiB, well under the 2 MB row limit. */
const CHUNK = 256 * 1024;

type Blob = "parameters" | "m" | "v";

/** How the run object's store groups its writes (see the top). */
export interface GroupCommit {
  /** Runs `flush` in a later event (a timer). */
  schedule(flush: () => void): void;
  /** Runs `fn` as one transaction (ctx.storage.transactionSync): all of a flush or none of it. */
  transaction(fn: () => void): void;
  /** A flush failed and was rolled back: its waiters are never told; the object must restart. */
  failed(e: unknown): void;
}

export class DoSqliteStore implements Store, CommitGate {
  /** The newest snapshot of each run whose version waits for the flush. */
  private readonly staged = new Map<string, RunSnapshot>();
  /** The other writes waiting, in order (their values taken when they were made). */
  private queued: (() => void)[] = [];
  /** Who waits for the flush, in order. */
  private waiting: (() => void)[] = [];
  private scheduled = false;
  /** Flushes done (each one transaction). */
  flushes = 0;

  constructor(
    private readonly sql: SqlStorage,
    private readonly group?: GroupCommit,
  ) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, record TEXT NOT NULL, opt_step INTEGER NOT NULL, progress TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS chunks (run_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, kind, seq));
      CREATE TABLE IF NOT EXISTS metrics (run_id TEXT NOT NULL, version INTEGER NOT NULL, point TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, version);
      CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, token TEXT NOT NULL, stats TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS sessions_by_token ON sessions (token);
    `);
  }

  get pending(): boolean {
    return this.staged.size > 0 || this.queued.length > 0;
  }

  whenDurable(fn: () => void): void {
    if (this.pending) this.waiting.push(fn);
    else fn();
  }

  /**
   * Writes what waits, in one transaction, then tells the waiting in order (their sends leave
   * behind the writes, held by the output gate until they are durable).
   */
  flush(): void {
    this.scheduled = false;
    if (!this.pending) return;
    const staged = [...this.staged.values()];
    const queued = this.queued;
    const waiting = this.waiting;
    this.staged.clear();
    this.queued = [];
    this.waiting = [];
    try {
      this.group!.transaction(() => {
        for (const write of queued) write();
        for (const snapshot of staged) this.writeSnapshot(snapshot);
      });
    } catch (e) {
      this.group!.failed(e);
      return;
    }
    this.flushes++;
    for (const fn of waiting) fn();
  }

  /** A write now, or (group commit) at the flush. */
  private write(fn: () => void): void {
    if (!this.group) fn();
    else {
      this.queued.push(fn);
      this.flushSoon();
    }
  }

  private flushSoon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.group!.schedule(() => this.flush());
  }

  listRuns(): RunRecord[] {
    if (this.pending) this.flush();
    return this.sql
      .exec<{ record: string }>("SELECT record FROM runs")
      .toArray()
      .map((r) => JSON.parse(r.record) as RunRecord);
  }

  loadRun(id: string): RunSnapshot | undefined {
    if (this.pending) this.flush();
    const row = this.sql
      .exec<{ record: string; opt_step: number; progress: string }>(
        "SELECT record, opt_step, progress FROM runs WHERE id = ?",
        id,
      )
      .toArray()[0];
    if (!row) return undefined;
    return {
      record: JSON.parse(row.record) as RunRecord,
      parameters: this.readFloats(id, "parameters"),
      optimizer: { step: row.opt_step, m: this.readFloats(id, "m"), v: this.readFloats(id, "v") },
      progress: JSON.parse(row.progress),
    };
  }

  createRun(snapshot: RunSnapshot): void {
    if (this.loadRun(snapshot.record.id)) throw new Error(`run ${snapshot.record.id} exists`);
    this.commitVersion(snapshot);
  }

  commitVersion(s: RunSnapshot, metric?: MetricPoint): void {
    const id = s.record.id;
    // Group commit: the rows are written at the flush, from the newest snapshot (its arrays are
    // the run's own, unchanged between events).
    if (this.group) {
      this.staged.set(id, s);
      this.flushSoon();
    } else this.writeSnapshot(s);
    if (metric) this.addMetric(metric);
    this.updateSessions(id, s.sessions ?? []);
  }

  private writeSnapshot(s: RunSnapshot): void {
    const id = s.record.id;
    this.sql.exec(
      "INSERT OR REPLACE INTO runs (id, record, opt_step, progress) VALUES (?, ?, ?, ?)",
      id,
      JSON.stringify(s.record),
      s.optimizer.step,
      JSON.stringify(s.progress),
    );
    this.writeFloats(id, "parameters", s.parameters);
    this.writeFloats(id, "m", s.optimizer.m);
    this.writeFloats(id, "v", s.optimizer.v);
  }

  private addMetric(point: MetricPoint): void {
    const json = JSON.stringify(point);
    this.write(() =>
      this.sql.exec(
        "INSERT INTO metrics (run_id, version, point) VALUES (?, ?, ?)",
        point.runId,
        point.version,
        json,
      ),
    );
  }

  /** One event's writes are one transaction on a Durable Object's storage. */
  updateSessions(runId: string, stats: SessionStats[]): void {
    for (const st of stats) {
      const json = JSON.stringify(st);
      this.write(() =>
        this.sql.exec(
          "UPDATE sessions SET stats = ? WHERE id = ? AND run_id = ?",
          json,
          st.id,
          runId,
        ),
      );
    }
  }

  updateRun(record: RunRecord): void {
    const json = JSON.stringify(record);
    this.write(() => this.sql.exec("UPDATE runs SET record = ? WHERE id = ?", json, record.id));
  }

  /** One event's writes are one transaction on a Durable Object's storage. */
  recordEvaluation(record: RunRecord, point: MetricPoint): void {
    this.updateRun(record);
    this.addMetric(point);
  }

  metrics(runId: string, limit = 10_000): MetricPoint[] {
    if (this.pending) this.flush();
    return this.sql
      .exec<{ point: string }>(
        "SELECT point FROM (SELECT point, rowid FROM metrics WHERE run_id = ? ORDER BY rowid DESC LIMIT ?) ORDER BY rowid",
        runId,
        limit,
      )
      .toArray()
      .map((r) => JSON.parse(r.point) as MetricPoint);
  }

  saveSession(session: SessionRecord): void {
    const json = JSON.stringify(session.stats);
    this.write(() =>
      this.sql.exec(
        "INSERT OR REPLACE INTO sessions (id, run_id, token, stats) VALUES (?, ?, ?, ?)",
        session.stats.id,
        session.runId,
        session.token,
        json,
      ),
    );
  }

  sessionByToken(token: string): SessionRecord | undefined {
    if (this.pending) this.flush();
    const row = this.sql
      .exec<{ run_id: string; stats: string }>(
        "SELECT run_id, stats FROM sessions WHERE token = ?",
        token,
      )
      .toArray()[0];
    return row && { runId: row.run_id, token, stats: JSON.parse(row.stats) };
  }

  sessions(runId: string): SessionRecord[] {
    if (this.pending) this.flush();
    return this.sql
      .exec<{ token: string; stats: string }>(
        "SELECT token, stats FROM sessions WHERE run_id = ?",
        runId,
      )
      .toArray()
      .map((r) => ({ runId, token: r.token, stats: JSON.parse(r.stats) }));
  }

  private writeFloats(runId: string, kind: Blob, values: Float32Array): void {
    this.sql.exec("DELETE FROM chunks WHERE run_id = ? AND kind = ?", runId, kind);
    for (let seq = 0, at = 0; at < values.length || seq === 0; seq++, at += CHUNK) {
      const part = values.subarray(at, at + CHUNK);
      // A copy: the row takes its own bytes, never a view the run goes on changing.
      this.sql.exec(
        "INSERT INTO chunks (run_id, kind, seq, data) VALUES (?, ?, ?, ?)",
        runId,
        kind,
        seq,
        part.slice().buffer,
      );
    }
  }

  private readFloats(runId: string, kind: Blob): Float32Array {
    const rows = this.sql
      .exec<{ data: ArrayBuffer }>(
        "SELECT data FROM chunks WHERE run_id = ? AND kind = ? ORDER BY seq",
        runId,
        kind,
      )
      .toArray();
    const total = rows.reduce((n, r) => n + r.data.byteLength / 4, 0);
    const out = new Float32Array(total);
    let at = 0;
    for (const r of rows) {
      out.set(new Float32Array(r.data), at);
      at += r.data.byteLength / 4;
    }
    return out;
  }
}
