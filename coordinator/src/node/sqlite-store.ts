// The Store on SQLite (better-sqlite3) in the data directory. WAL with synchronous=FULL: a
// transaction has reached the disk when its COMMIT returns, so a version announced after it
// survives SIGKILL and power loss alike. One row per run holds its record, parameters,
// optimizer state and epoch progress; metrics are rows of their own.
//
// Group commit (the server's mode): the writes of every event handled in one turn of the event
// loop go into one transaction, committed just after the turn (setImmediate); a run that made
// several versions meanwhile has its row written once, as of the last. The coordinator holds
// what it sends until that transaction is durable (CommitGate), so nothing is announced before
// it is on disk. Without group commit, each write is its own durable transaction.
//
// In group commit no disk wait holds the event loop: an fsync took up to 82 ms on this machine
// during a GPT run, and every frame, heartbeat and API answer waited behind it. So the COMMIT
// only writes the WAL (synchronous=NORMAL: into the page cache, which a SIGKILL does not lose),
// and the WAL is then fsynced on libuv's thread pool; what waits is told when the fsync that
// started after its COMMIT returns, so power loss loses nothing told either. Checkpoints (which
// copy the WAL into the database file and fsync both) run on a thread of their own with its
// own connection, instead of SQLite's automatic ones inside a COMMIT.
import { closeSync, fsync, fsyncSync, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
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
  /** Who waits, each for the fsync that covers commit number `after` (see whenDurable). */
  private waiting: Array<{ after: number; fn: () => void }> = [];
  /** Transactions committed. */
  commits = 0;
  /** Group commit: the commits the last finished fsync covers, and whether one is running. */
  synced = 0;
  private syncing = false;
  private wal: number | undefined;
  private readonly file: string;
  private checkpointer: Worker | undefined;
  private checkpointing = false;
  private lastCheckpoint = 0;
  /** The WAL's frames left after the last checkpoint (a writer that never lets it restart). */
  private walFrames = 0;
  /** Checkpoints the checkpointer thread finished. */
  checkpoints = 0;
  private failed = false;

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
    this.file = join(dataDir, "pangea.sqlite");
    this.db = new Database(this.file);
    this.db.pragma("journal_mode = WAL");
    if (options.groupCommit) {
      // Durable by the fsync after the COMMIT and by the checkpointer's (see the top).
      this.db.pragma("synchronous = NORMAL");
      this.db.pragma("wal_autocheckpoint = 0");
    } else this.db.pragma("synchronous = FULL");
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

  /** Commits this turn's transaction; whoever waits for it is told once the WAL is fsynced. */
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
      // Only the rolled-back transaction's waiters: what was committed before is still told.
      this.waiting = this.waiting.filter((w) => w.after <= this.commits);
      this.report(e);
      return;
    }
    this.open = false;
    this.startSync();
  }

  /** One fsync of the WAL at a time, off the event loop; it covers every COMMIT before it. */
  private startSync(): void {
    if (this.syncing || this.failed || this.synced === this.commits) return;
    const covers = this.commits;
    let fd: number;
    try {
      fd = this.walFd();
    } catch (e) {
      this.syncFailed(e);
      return;
    }
    this.syncing = true;
    fsync(fd, (e) => {
      this.syncing = false;
      if (e) return this.syncFailed(e);
      this.durable(covers);
      this.checkpointSoon();
      this.startSync();
    });
  }

  /** Tells, in order, whoever waited for a commit up to `covers`. */
  private durable(covers: number): void {
    this.synced = Math.max(this.synced, covers);
    const ready = this.waiting.filter((w) => w.after <= this.synced);
    this.waiting = this.waiting.filter((w) => w.after > this.synced);
    for (const w of ready) w.fn();
  }

  /**
   * The WAL's descriptor, opened once it exists (after the first COMMIT); its directory is
   * fsynced then, so that the file itself survives power loss. SQLite keeps the file while the
   * database is open (it is rewritten from the start after a checkpoint, never replaced).
   */
  private walFd(): number {
    if (this.wal === undefined) {
      this.wal = openSync(`${this.file}-wal`, "r+");
      const dir = openSync(join(this.file, ".."), "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return this.wal;
  }

  /**
   * At most one checkpoint a second, on the checkpointer thread (PASSIVE: it never waits for
   * this connection, which goes on writing). A WAL that no checkpoint could empty, because a
   * COMMIT always landed during it, is checkpointed here at the next quiet moment, past 64 MiB.
   */
  private checkpointSoon(): void {
    if (this.checkpointing || Date.now() - this.lastCheckpoint < 1000) return;
    if (this.walFrames > (64 << 20) / 4096 && !this.open) {
      const [r] = this.db.pragma("wal_checkpoint(RESTART)") as { log: number }[];
      this.walFrames = r?.log ?? 0;
    }
    this.checkpointing = true;
    this.checkpointer ??= this.startCheckpointer();
    this.checkpointer.postMessage("checkpoint");
  }

  private startCheckpointer(): Worker {
    const require = createRequire(import.meta.url);
    const w = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       const Database = require(workerData.sqlite);
       const db = new Database(workerData.file);
       parentPort.on("message", () => {
         try {
           const [r] = db.pragma("wal_checkpoint(PASSIVE)");
           parentPort.postMessage({ log: r.log });
         } catch (e) {
           parentPort.postMessage({ error: String(e && e.message) });
         }
       });`,
      { eval: true, workerData: { sqlite: require.resolve("better-sqlite3"), file: this.file } },
    );
    w.unref();
    w.on("message", (m: { log?: number; error?: string }) => {
      this.checkpointing = false;
      this.lastCheckpoint = Date.now();
      // A failed checkpoint loses nothing (the WAL holds it all and is fsynced): it is retried.
      if (m.error) console.error(`coordinator: a WAL checkpoint failed: ${m.error}`);
      else {
        this.walFrames = m.log ?? 0;
        this.checkpoints++;
      }
    });
    w.on("error", (e) => {
      console.error(`coordinator: the checkpointer thread failed: ${e.message}`);
      this.checkpointer = undefined;
      this.checkpointing = false;
    });
    return w;
  }

  /** A COMMIT failed (rolled back): the owner decides what follows (the server stops). */
  private report(e: unknown): void {
    if (!this.options.onCommitFailure) throw e;
    this.options.onCommitFailure(e);
  }

  /**
   * An fsync failed: what it covered may not be on disk, and a second fsync could succeed
   * without having written it (Linux forgets the error), so no one waiting is ever told.
   */
  private syncFailed(e: unknown): void {
    this.failed = true;
    this.waiting = [];
    this.report(e);
  }

  /**
   * Shutting down: commits this turn's writes and fsyncs them here, then tells whoever waits,
   * so that what the shutdown committed is told before the sockets close.
   */
  syncNow(): void {
    this.flush();
    if (this.failed || this.synced === this.commits) return;
    fsyncSync(this.walFd());
    this.durable(this.commits);
  }

  get pending(): boolean {
    return this.open || (!!this.options.groupCommit && this.synced < this.commits);
  }

  whenDurable(fn: () => void): void {
    // The commit it waits for: this turn's (not yet committed), or the last one.
    const after = this.open ? this.commits + 1 : this.commits;
    if (!this.options.groupCommit || after <= this.synced) fn();
    else this.waiting.push({ after, fn });
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
    if (this.options.groupCommit) this.syncNow();
    else this.flush();
    void this.checkpointer?.terminate();
    if (this.wal !== undefined) closeSync(this.wal);
    this.db.close();
  }
}
