// The Store in memory: for the core's tests and for a coordinator started without a data
// directory. Snapshots are copied in and out, so a caller's later writes never leak into it.
import type {
  MetricPoint,
  RunRecord,
  RunSnapshot,
  SessionRecord,
  SessionStats,
  Store,
} from "./ports.ts";

const copy = (s: RunSnapshot): RunSnapshot => structuredClone(s);

export class MemoryStore implements Store {
  private readonly runs = new Map<string, RunSnapshot>();
  private readonly points = new Map<string, MetricPoint[]>();
  private readonly sessionRows = new Map<string, SessionRecord>();
  /** Counts commits, so tests can see that a version was written before it was announced. */
  commits = 0;

  listRuns(): RunRecord[] {
    return [...this.runs.values()].map((s) => structuredClone(s.record));
  }

  loadRun(id: string): RunSnapshot | undefined {
    const s = this.runs.get(id);
    return s && copy(s);
  }

  createRun(snapshot: RunSnapshot): void {
    if (this.runs.has(snapshot.record.id)) throw new Error(`run ${snapshot.record.id} exists`);
    this.runs.set(snapshot.record.id, copy(snapshot));
  }

  commitVersion(snapshot: RunSnapshot, metric?: MetricPoint): void {
    const { sessions, ...run } = snapshot;
    this.runs.set(snapshot.record.id, copy(run));
    if (metric) this.pointsOf(snapshot.record.id).push({ ...metric });
    this.updateSessions(snapshot.record.id, sessions ?? []);
    this.commits++;
  }

  updateSessions(runId: string, stats: SessionStats[]): void {
    for (const st of stats) {
      const row = this.sessionRows.get(st.id);
      if (row?.runId === runId) row.stats = structuredClone(st);
    }
  }

  updateRun(record: RunRecord): void {
    const s = this.runs.get(record.id);
    if (!s) throw new Error(`no run ${record.id}`);
    s.record = structuredClone(record);
  }

  recordEvaluation(record: RunRecord, point: MetricPoint): void {
    this.updateRun(record);
    this.pointsOf(record.id).push({ ...point });
  }

  saveSession(session: SessionRecord): void {
    this.sessionRows.set(session.stats.id, structuredClone(session));
  }

  sessionByToken(token: string): SessionRecord | undefined {
    for (const s of this.sessionRows.values()) if (s.token === token) return structuredClone(s);
    return undefined;
  }

  sessions(runId: string): SessionRecord[] {
    return [...this.sessionRows.values()]
      .filter((s) => s.runId === runId)
      .map((s) => structuredClone(s));
  }

  metrics(runId: string, limit = 10_000): MetricPoint[] {
    return this.pointsOf(runId).slice(-limit);
  }

  private pointsOf(id: string): MetricPoint[] {
    let p = this.points.get(id);
    if (!p) {
      p = [];
      this.points.set(id, p);
    }
    return p;
  }
}
