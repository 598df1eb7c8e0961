// The core's Store on a Durable Object's SQLite storage (`ctx.storage.sql`), which is synchronous
// like the port: a version is written before the DO answers anyone. Inside a DO every call is
// part of the event's implicit transaction, and the output gate holds outgoing messages until the
// write is durable, so commit-before-announce holds here as on Node.
//
// Rows stay under the platform's 2 MB: parameters and optimizer moments are split into chunks.
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

export class DoSqliteStore implements Store {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, record TEXT NOT NULL, opt_step INTEGER NOT NULL, progress TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS chunks (run_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, kind, seq));
      CREATE TABLE IF NOT EXISTS metrics (run_id TEXT NOT NULL, version INTEGER NOT NULL, point TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, version);
      CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, token TEXT NOT NULL, stats TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS sessions_by_token ON sessions (token);
    `);
  }

  listRuns(): RunRecord[] {
    return this.sql
      .exec<{ record: string }>("SELECT record FROM runs")
      .toArray()
      .map((r) => JSON.parse(r.record) as RunRecord);
  }

  loadRun(id: string): RunSnapshot | undefined {
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
    if (metric)
      this.sql.exec(
        "INSERT INTO metrics (run_id, version, point) VALUES (?, ?, ?)",
        id,
        metric.version,
        JSON.stringify(metric),
      );
    this.updateSessions(id, s.sessions ?? []);
  }

  /** One event's writes are one transaction on a Durable Object's storage. */
  updateSessions(runId: string, stats: SessionStats[]): void {
    for (const st of stats)
      this.sql.exec(
        "UPDATE sessions SET stats = ? WHERE id = ? AND run_id = ?",
        JSON.stringify(st),
        st.id,
        runId,
      );
  }

  updateRun(record: RunRecord): void {
    this.sql.exec("UPDATE runs SET record = ? WHERE id = ?", JSON.stringify(record), record.id);
  }

  /** One event's writes are one transaction on a Durable Object's storage. */
  recordEvaluation(record: RunRecord, point: MetricPoint): void {
    this.updateRun(record);
    this.sql.exec(
      "INSERT INTO metrics (run_id, version, point) VALUES (?, ?, ?)",
      point.runId,
      point.version,
      JSON.stringify(point),
    );
  }

  metrics(runId: string, limit = 10_000): MetricPoint[] {
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
    this.sql.exec(
      "INSERT OR REPLACE INTO sessions (id, run_id, token, stats) VALUES (?, ?, ?, ?)",
      session.stats.id,
      session.runId,
      session.token,
      JSON.stringify(session.stats),
    );
  }

  sessionByToken(token: string): SessionRecord | undefined {
    const row = this.sql
      .exec<{ run_id: string; stats: string }>(
        "SELECT run_id, stats FROM sessions WHERE token = ?",
        token,
      )
      .toArray()[0];
    return row && { runId: row.run_id, token, stats: JSON.parse(row.stats) };
  }

  sessions(runId: string): SessionRecord[] {
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
