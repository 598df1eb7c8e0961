// The Store on SQLite (better-sqlite3) in the data directory. WAL with synchronous=FULL: a
// transaction has reached the disk when its COMMIT returns, so a version announced after it
// survives SIGKILL and power loss alike. One row per run holds its record, parameters,
// optimizer state and epoch progress; metrics are rows of their own.
//
// Group commit (the server's mode): the writes of every event handled in one turn of the event
// loop go into one transaction, committed (one fsync) just after the turn (setImmediate); a run
// that made several versions meanwhile has its row written once, as of the last. The
// coordinator holds what it sends until then (CommitGate), so nothing is announced before it
// is durable. Without it, each write is its own durable transaction.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { CommitGate } from "../core/coordinator.ts";
import type {
  MetricPoint,
  RunRecord,
  RunSnapshot,
  SessionRecord,
  SessionStats,
  Store,
} from "../core/ports.ts";

const floats = (b: Buffer): Float32Array => {
  // A copy into an aligned buffer: SQLite's blob buffers need not be 4-byte aligned.
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
};
const blob = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A snapshot as the runs table's columns after the id, in their order. */
const columns = (s: RunSnapshot) =>
  [
    JSON.stringify(s.record),
    blob(s.parameters),
    s.optimizer.step,
    blob(s.optimizer.m),
    blob(s.optimizer.v),
    JSON.stringify(s.progress),
  ] as const;

interface RunRow {
  record: string;
  parameters: Buffer;
  opt_step: number;
  opt_m: Buffer;
  opt_v: Buffer;
  progress: string;
}

export class SqliteStore implements Store, CommitGate {
  readonly db: Database.Database;
  private readonly statements;
  /** Group commit: the transaction open for this turn, the newest snapshot of each run in it,
   * and who waits for it to be durable. */
  private open = false;
  private readonly staged = new Map<string, RunSnapshot>();
  private waiting: Array<() => void> = [];
  /** Transactions committed (each one fsync). */
  commits = 0;

  constructor(
    dataDir: string,
    private readonly options: {
      groupCommit?: boolean;
      /** A group commit failed (a full disk): nothing it held was announced; the process state
       * is ahead of the disk, so the server stops (and resumes from the disk when restarted). */
      onCommitFailure?: (e: unknown) => void;
    } = {},
  ) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, "pangea.sqlite"));
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        parameters BLOB NOT NULL,
        opt_step INTEGER NOT NULL,
        opt_m BLOB NOT NULL,
        opt_v BLOB NOT NULL,
        progress TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        point TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, version);
      CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        token TEXT NOT NULL,
        stats TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS sessions_by_run ON sessions (run_id);
      CREATE INDEX IF NOT EXISTS sessions_by_token ON sessions (token);
    `);
    this.statements = {
      list: this.db.prepare<[], { record: string }>("SELECT record FROM runs"),
      load: this.db.prepare<[string], RunRow>(
        "SELECT record, parameters, opt_step, opt_m, opt_v, progress FROM runs WHERE id = ?",
      ),
      insert: this.db.prepare(
        "INSERT INTO runs (id, record, parameters, opt_step, opt_m, opt_v, progress) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ),
      replace: this.db.prepare(
        "UPDATE runs SET record = ?, parameters = ?, opt_step = ?, opt_m = ?, opt_v = ?, progress = ? WHERE id = ?",
      ),
      record: this.db.prepare("UPDATE runs SET record = ? WHERE id = ?"),
      updateStats: this.db.prepare("UPDATE sessions SET stats = ? WHERE id = ? AND run_id = ?"),
      saveSession: this.db.prepare(
        "INSERT OR REPLACE INTO sessions (id, run_id, token, stats) VALUES (?, ?, ?, ?)",
      ),
      byToken: this.db.prepare<[string], { run_id: string; stats: string }>(
        "SELECT run_id, stats FROM sessions WHERE token = ?",
      ),
      sessions: this.db.prepare<[string], { token: string; stats: string }>(
        "SELECT token, stats FROM sessions WHERE run_id = ?",
      ),
      metric: this.db.prepare("INSERT INTO metrics (run_id, version, point) VALUES (?, ?, ?)"),
      metrics: this.db.prepare<[string, number], { point: string }>(
        "SELECT point FROM (SELECT point, rowid FROM metrics WHERE run_id = ? ORDER BY rowid DESC LIMIT ?) ORDER BY rowid",
      ),
    };
  }

  listRuns(): RunRecord[] {
    return this.statements.list.all().map((r) => JSON.parse(r.record) as RunRecord);
  }

  loadRun(id: string): RunSnapshot | undefined {
    const row = this.statements.load.get(id);
    if (!row) return undefined;
    return {
      record: JSON.parse(row.record) as RunRecord,
      parameters: floats(row.parameters),
      optimizer: { step: row.opt_step, m: floats(row.opt_m), v: floats(row.opt_v) },
      progress: JSON.parse(row.progress),
    };
  }

  /** Runs `write` in this turn's transaction (group commit), or in one of its own. */
  private write(write: () => void): void {
    if (!this.options.groupCommit) {
      this.db.transaction(write)();
      this.commits++;
      return;
    }
    if (!this.open) {
      this.db.exec("BEGIN");
      this.open = true;
      setImmediate(() => this.flush());
    }
    // A savepoint inside the turn's transaction: a write that fails leaves none of itself.
    this.db.transaction(write)();
  }

  /** Commits this turn's transaction, then tells whoever waits. */
  flush(): void {
    if (!this.open) return;
    try {
      for (const s of this.staged.values()) this.statements.replace.run(...columns(s), s.record.id);
      this.staged.clear();
      this.db.exec("COMMIT");
      this.commits++;
    } catch (e) {
      this.staged.clear();
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      this.open = false;
      this.waiting = [];
      if (!this.options.onCommitFailure) throw e;
      this.options.onCommitFailure(e);
      return;
    }
    this.open = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const fn of waiting) fn();
  }

  get pending(): boolean {
    return this.open;
  }

  whenDurable(fn: () => void): void {
    if (this.open) this.waiting.push(fn);
    else fn();
  }

  createRun(s: RunSnapshot): void {
    this.write(() => this.statements.insert.run(s.record.id, ...columns(s)));
  }

  commitVersion(s: RunSnapshot, metric?: MetricPoint): void {
    this.write(() => {
      // Group commit: the row is written at the commit, from the newest snapshot (its arrays
      // are the run's own, unchanged between events).
      if (this.options.groupCommit) this.staged.set(s.record.id, s);
      else this.statements.replace.run(...columns(s), s.record.id);
      if (metric) this.statements.metric.run(metric.runId, metric.version, JSON.stringify(metric));
      for (const stats of s.sessions ?? [])
        this.statements.updateStats.run(JSON.stringify(stats), stats.id, s.record.id);
    });
  }

  updateSessions(runId: string, stats: SessionStats[]): void {
    this.write(() => {
      for (const st of stats) this.statements.updateStats.run(JSON.stringify(st), st.id, runId);
    });
  }

  updateRun(record: RunRecord): void {
    this.write(() => this.statements.record.run(JSON.stringify(record), record.id));
  }

  recordEvaluation(record: RunRecord, point: MetricPoint): void {
    this.write(() => {
      this.statements.record.run(JSON.stringify(record), record.id);
      this.statements.metric.run(point.runId, point.version, JSON.stringify(point));
    });
  }

  saveSession(session: SessionRecord): void {
    this.write(() =>
      this.statements.saveSession.run(
        session.stats.id,
        session.runId,
        session.token,
        JSON.stringify(session.stats),
      ),
    );
  }

  sessionByToken(token: string): SessionRecord | undefined {
    const row = this.statements.byToken.get(token);
    return row && { runId: row.run_id, token, stats: JSON.parse(row.stats) };
  }

  sessions(runId: string): SessionRecord[] {
    return this.statements.sessions.all(runId).map((r) => ({
      runId,
      token: r.token,
      stats: JSON.parse(r.stats) as SessionRecord["stats"],
    }));
  }

  metrics(runId: string, limit = 10_000): MetricPoint[] {
    return this.statements.metrics.all(runId, limit).map((r) => JSON.parse(r.point) as MetricPoint);
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
