// The Store on SQLite (better-sqlite3) in the data directory, in WAL mode. One row per run holds
// its record, parameters, optimizer state and epoch progress; metrics and sessions are rows of
// their own.
//
// Without group commit (the CLI, tests), each write is its own transaction with
// synchronous=FULL: it has reached the disk when the call returns.
//
// Group commit (the server's mode): the writes of every event handled in one turn of the event
// loop go into one transaction, and a run that made several versions meanwhile has its row
// written once, as of the last. The coordinator holds what it sends until that transaction is
// durable (CommitGate), so nothing is announced before it is on disk.
//
// In group commit no write holds the event loop. The transactions are written by a thread of
// their own (the writer), with its own connection, synchronous=FULL (the WAL is fsynced before
// its COMMIT returns) and its own checkpoints. A GPT run's COMMIT wrote 1.3 MB of parameters
// and moments a version, 20-35 ms of the main thread's time inside its longest holds: the
// main thread now only copies the newest arrays (well under a millisecond) and posts them.
// One transaction is with the writer at a time; what arrives meanwhile waits for the next, so
// a slow disk makes the transactions larger, not more. Whoever waits is told, in order, when
// the writer reports the transaction that holds their writes as committed. The main connection
// only reads: it sees what the writer has committed, and so everything anyone was told.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  MessageChannel,
  type MessagePort,
  receiveMessageOnPort,
  Worker,
} from "node:worker_threads";
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
const columns = (s: RunSnapshot, bytes: (a: Float32Array) => Uint8Array = blob) =>
  [
    JSON.stringify(s.record),
    bytes(s.parameters),
    s.optimizer.step,
    bytes(s.optimizer.m),
    bytes(s.optimizer.v),
    JSON.stringify(s.progress),
  ] as const;

/** Every write this store makes, by name: the writer thread prepares the same ones. */
const WRITES = {
  insert:
    "INSERT INTO runs (record, parameters, opt_step, opt_m, opt_v, progress, id) VALUES (?, ?, ?, ?, ?, ?, ?)",
  replace:
    "UPDATE runs SET record = ?, parameters = ?, opt_step = ?, opt_m = ?, opt_v = ?, progress = ? WHERE id = ?",
  record: "UPDATE runs SET record = ? WHERE id = ?",
  updateStats: "UPDATE sessions SET stats = ? WHERE id = ? AND run_id = ?",
  saveSession: "INSERT OR REPLACE INTO sessions (id, run_id, token, stats) VALUES (?, ?, ?, ?)",
  metric: "INSERT INTO metrics (run_id, version, point) VALUES (?, ?, ?)",
} as const;
type WriteName = keyof typeof WRITES;
/** One write: a statement of WRITES and its values. */
type Write = [WriteName, ...Array<string | number | Uint8Array>];

/**
 * What the writer answers for transaction `n`: committed (with the blobs' buffers, given back
 * for the next copies), or failed and rolled back.
 */
type WriterReply =
  | { n: number; error?: string; buffers?: ArrayBuffer[] }
  | { checkpointed: number };

/**
 * The writer thread. It runs each transaction it is sent (BEGIN, the writes, COMMIT, which
 * fsyncs the WAL), publishes the number of the last one it finished in `done[0]` (so that a
 * shutdown can wait for it without the event loop), and answers. At most once a second after a
 * commit it checkpoints the WAL into the database file (PASSIVE: readers are never waited for;
 * past 64 MiB of WAL, RESTART, so that it starts over). The WAL's directory is fsynced once,
 * after the first commit, so that the file itself survives power loss.
 */
const WRITER = `
const { workerData } = require("node:worker_threads");
const { closeSync, fsyncSync, openSync } = require("node:fs");
const { dirname } = require("node:path");
const Database = require(workerData.sqlite);
const { file, writes, done, port } = workerData;
const db = new Database(file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("wal_autocheckpoint = 0");
db.pragma("busy_timeout = 10000");
const statements = {};
for (const [name, sql] of Object.entries(writes)) statements[name] = db.prepare(sql);
const transaction = db.transaction((list) => {
  for (const [name, ...values] of list) statements[name].run(...values);
});
let dirSynced = false;
let lastCheckpoint = 0;
port.on("message", ({ n, list }) => {
  let error;
  try {
    transaction(list);
    if (!dirSynced) {
      const dir = openSync(dirname(file), "r");
      try { fsyncSync(dir); } finally { closeSync(dir); }
      dirSynced = true;
    }
  } catch (e) {
    error = String((e && e.message) || e);
  }
  // The answer first: whoever sees the count can then read it from the port.
  if (error === undefined) {
    const buffers = list.flatMap((w) => w.filter((v) => v instanceof Uint8Array).map((b) => b.buffer));
    port.postMessage({ n, buffers }, buffers);
  } else port.postMessage({ n, error });
  Atomics.store(done, 0, n);
  Atomics.notify(done, 0);
  if (error !== undefined || Date.now() - lastCheckpoint < 1000) return;
  lastCheckpoint = Date.now();
  try {
    const [r] = db.pragma("wal_checkpoint(PASSIVE)");
    if (r.log > (64 << 20) / 4096) db.pragma("wal_checkpoint(RESTART)");
    port.postMessage({ checkpointed: r.log });
  } catch (e) {
    // A failed checkpoint loses nothing (the WAL holds it all, fsynced): the next one retries.
    console.error("coordinator: a WAL checkpoint failed: " + ((e && e.message) || e));
  }
});
`;

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
  private readonly reads;
  /** Without group commit: the writes, prepared on the one connection. */
  private readonly writes: Record<WriteName, Database.Statement> | undefined;
  /**
   * Group commit: the transaction being gathered (its writes, then the newest snapshot of each
   * run it changed, whose row is written from it when it goes to the writer).
   */
  private open = false;
  private gathered: Write[] = [];
  private readonly staged = new Map<string, RunSnapshot>();
  /** Who waits, each for the transaction numbered `after` (see whenDurable). */
  private waiting: Array<{ after: number; fn: () => void }> = [];
  /** Transactions handed to the writer (or, without group commit, committed). */
  commits = 0;
  /** Group commit: the transactions the writer has committed. */
  synced = 0;
  /** The transaction with the writer now, if any. */
  private writing: number | undefined;
  private writer: { thread: Worker; port: MessagePort; done: Int32Array } | undefined;
  /** Checkpoints the writer finished. */
  checkpoints = 0;
  private failed = false;
  private readonly file: string;
  /** Buffers the writer gave back, by size: the next copies of a run's arrays go into them. */
  private readonly spareBuffers = new Map<number, ArrayBuffer[]>();

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
    this.db.pragma("synchronous = FULL");
    // The writer checkpoints while this connection reads: a read waits for no one.
    this.db.pragma("busy_timeout = 10000");
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
    this.reads = {
      list: this.db.prepare<[], { record: string }>("SELECT record FROM runs"),
      load: this.db.prepare<[string], RunRow>(
        "SELECT record, parameters, opt_step, opt_m, opt_v, progress FROM runs WHERE id = ?",
      ),
      byToken: this.db.prepare<[string], { run_id: string; stats: string }>(
        "SELECT run_id, stats FROM sessions WHERE token = ?",
      ),
      sessions: this.db.prepare<[string], { token: string; stats: string }>(
        "SELECT token, stats FROM sessions WHERE run_id = ?",
      ),
      metrics: this.db.prepare<[string, number], { point: string }>(
        "SELECT point FROM (SELECT point, rowid FROM metrics WHERE run_id = ? ORDER BY rowid DESC LIMIT ?) ORDER BY rowid",
      ),
    };
    if (!options.groupCommit)
      this.writes = Object.fromEntries(
        Object.entries(WRITES).map(([name, sql]) => [name, this.db.prepare(sql)]),
      ) as Record<WriteName, Database.Statement>;
  }

  listRuns(): RunRecord[] {
    return this.reads.list.all().map((r) => JSON.parse(r.record) as RunRecord);
  }

  loadRun(id: string): RunSnapshot | undefined {
    const row = this.reads.load.get(id);
    if (!row) return undefined;
    return {
      record: JSON.parse(row.record) as RunRecord,
      parameters: floats(row.parameters),
      optimizer: { step: row.opt_step, m: floats(row.opt_m), v: floats(row.opt_v) },
      progress: JSON.parse(row.progress),
    };
  }

  /** Makes `list` durable now (its own transaction), or gathers it into this turn's. */
  private write(list: Write[], staged?: RunSnapshot): void {
    if (this.writes) {
      const writes = this.writes;
      this.db.transaction(() => {
        for (const [name, ...values] of list) writes[name].run(...values);
        if (staged) writes.replace.run(...columns(staged), staged.record.id);
      })();
      this.commits++;
      return;
    }
    if (!this.open) {
      this.open = true;
      setImmediate(() => this.flush());
    }
    this.gathered.push(...list);
    // Its row is written from the newest snapshot when the transaction goes to the writer
    // (its arrays are the run's own, unchanged until its next version, which stages anew).
    if (staged) this.staged.set(staged.record.id, staged);
  }

  /**
   * Hands the gathered transaction to the writer, unless one is with it already (then this
   * one goes when that one is answered). Whoever waits is told once it is committed.
   */
  flush(): void {
    if (!this.open || this.writing !== undefined || this.failed) return;
    let list: Write[];
    try {
      list = this.gathered;
      for (const s of this.staged.values())
        list.push(["replace", ...columns(s, (a) => this.copied(a)), s.record.id]);
    } catch (e) {
      // Nothing of it reached the writer: as a rolled-back COMMIT. The transaction before it
      // is still told once committed; nothing after it is written (it may build on this one).
      this.gathered = [];
      this.staged.clear();
      this.open = false;
      this.failed = true;
      this.waiting = this.waiting.filter((w) => w.after <= this.commits);
      this.report(e);
      return;
    }
    this.gathered = [];
    this.staged.clear();
    this.open = false;
    const n = ++this.commits;
    this.writing = n;
    const writer = this.startWriter();
    // Held open while a transaction is with the writer (its answer is awaited), not otherwise.
    writer.port.ref();
    const transfer = list.flatMap((w) => w.filter((v) => v instanceof Uint8Array)) as Uint8Array[];
    writer.port.postMessage(
      { n, list },
      transfer.map((b) => b.buffer as ArrayBuffer),
    );
  }

  /** A copy of the array's bytes in a buffer of its own (handed to the writer, which keeps it). */
  private copied(a: Float32Array): Uint8Array {
    const spare = this.spareBuffers.get(a.byteLength)?.pop();
    const out = new Uint8Array(spare ?? new ArrayBuffer(a.byteLength));
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return out;
  }

  private startWriter(): NonNullable<SqliteStore["writer"]> {
    if (this.writer) return this.writer;
    const require = createRequire(import.meta.url);
    const done = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    const thread = new Worker(WRITER, {
      eval: true,
      workerData: {
        sqlite: require.resolve("better-sqlite3"),
        file: this.file,
        writes: WRITES,
        done,
        port: port2,
      },
      transferList: [port2],
    });
    thread.unref();
    port1.unref();
    port1.on("message", (m: WriterReply) => this.answered(m));
    thread.on("error", (e) => this.writerFailed(e));
    thread.on("exit", (code) => {
      if (this.writer) this.writerFailed(new Error(`the SQLite writer thread exited (${code})`));
    });
    this.writer = { thread, port: port1, done };
    return this.writer;
  }

  private answered(m: WriterReply): void {
    if ("checkpointed" in m) {
      this.checkpoints++;
      return;
    }
    if (m.n !== this.writing) return; // already taken by syncNow
    this.writing = undefined;
    this.writer?.port.unref();
    if (m.error !== undefined) {
      this.writerFailed(new Error(m.error));
      return;
    }
    // Only this transaction's: the next copies are of the same arrays, and a finished run's
    // sizes are not kept for ever. A few of each size: parameters and moments are three of one.
    this.spareBuffers.clear();
    for (const b of m.buffers ?? []) {
      const spare = this.spareBuffers.get(b.byteLength) ?? [];
      if (spare.length < 6) spare.push(b);
      this.spareBuffers.set(b.byteLength, spare);
    }
    this.durable(m.n);
    this.flush();
  }

  /** Tells, in order, whoever waited for a transaction up to `covers`. */
  private durable(covers: number): void {
    this.synced = Math.max(this.synced, covers);
    const ready = this.waiting.filter((w) => w.after <= this.synced);
    this.waiting = this.waiting.filter((w) => w.after > this.synced);
    for (const w of ready) w.fn();
  }

  /** A COMMIT failed (rolled back): the owner decides what follows (the server stops). */
  private report(e: unknown): void {
    if (!this.options.onCommitFailure) throw e;
    this.options.onCommitFailure(e);
  }

  /**
   * The writer failed a transaction (rolled back) or died: what followed it in this process
   * may build on it, so no one waiting is ever told, and nothing more is written.
   */
  private writerFailed(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.writing = undefined;
    this.waiting = [];
    this.report(e);
  }

  /**
   * Shutting down: waits (blocking) for the transaction with the writer, hands it this turn's
   * and waits for that too, then tells whoever waits, so that what the shutdown committed is
   * told before the sockets close.
   */
  syncNow(): void {
    if (!this.options.groupCommit) return;
    // The transaction with the writer, then the one gathered meanwhile (each answer hands over
    // what waits), then nothing.
    for (let i = 0; i < 3; i++) {
      if (this.writing === undefined) this.flush();
      const n = this.writing;
      if (n === undefined || !this.writer) return;
      const { done, port } = this.writer;
      // A minute at most: a writer that died meanwhile cannot say so while this thread waits.
      // (The count may lag its answer, never lead it.)
      let timeouts = 0;
      for (let d = Atomics.load(done, 0); d < n && timeouts < 60; d = Atomics.load(done, 0))
        if (Atomics.wait(done, 0, d, 1000) === "timed-out") timeouts++;
      if (Atomics.load(done, 0) < n) {
        this.writerFailed(new Error("the SQLite writer did not finish within a minute"));
        return;
      }
      // Its answer, read here rather than on a later turn (a checkpoint's may come first).
      while (this.writing === n) {
        const m = receiveMessageOnPort(port);
        if (!m) break;
        this.answered(m.message as WriterReply);
      }
    }
  }

  get pending(): boolean {
    return this.open || (!!this.options.groupCommit && this.synced < this.commits);
  }

  whenDurable(fn: () => void): void {
    // The transaction it waits for: the one being gathered, or the last one handed over.
    const after = this.open ? this.commits + 1 : this.commits;
    if (!this.options.groupCommit || after <= this.synced) fn();
    else this.waiting.push({ after, fn });
  }

  createRun(s: RunSnapshot): void {
    // Copied now: the run may step before the transaction goes.
    this.write([
      ["insert", ...columns(s, this.writes ? blob : (a) => this.copied(a)), s.record.id],
    ]);
  }

  commitVersion(s: RunSnapshot, metric?: MetricPoint): void {
    const list: Write[] = [];
    if (metric) list.push(["metric", metric.runId, metric.version, JSON.stringify(metric)]);
    for (const stats of s.sessions ?? [])
      list.push(["updateStats", JSON.stringify(stats), stats.id, s.record.id]);
    this.write(list, s);
  }

  updateSessions(runId: string, stats: SessionStats[]): void {
    this.write(stats.map((st) => ["updateStats", JSON.stringify(st), st.id, runId]));
  }

  updateRun(record: RunRecord): void {
    this.write([["record", JSON.stringify(record), record.id]]);
  }

  recordEvaluation(record: RunRecord, point: MetricPoint): void {
    this.write([
      ["record", JSON.stringify(record), record.id],
      ["metric", point.runId, point.version, JSON.stringify(point)],
    ]);
  }

  saveSession(session: SessionRecord): void {
    this.write([
      [
        "saveSession",
        session.stats.id,
        session.runId,
        session.token,
        JSON.stringify(session.stats),
      ],
    ]);
  }

  sessionByToken(token: string): SessionRecord | undefined {
    const row = this.reads.byToken.get(token);
    return row && { runId: row.run_id, token, stats: JSON.parse(row.stats) };
  }

  sessions(runId: string): SessionRecord[] {
    return this.reads.sessions.all(runId).map((r) => ({
      runId,
      token: r.token,
      stats: JSON.parse(r.stats) as SessionRecord["stats"],
    }));
  }

  metrics(runId: string, limit = 10_000): MetricPoint[] {
    return this.reads.metrics.all(runId, limit).map((r) => JSON.parse(r.point) as MetricPoint);
  }

  close(): void {
    this.syncNow();
    const writer = this.writer;
    this.writer = undefined;
    void writer?.thread.terminate();
    writer?.port.close();
    this.db.close();
  }
}
