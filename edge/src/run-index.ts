// The list of runs, for the dashboard and for a tab that joins without naming one: a single
// Durable Object with a table of run ids (each run lives in its own RunObject).
import { DurableObject } from "cloudflare:workers";

export interface IndexedRun {
  id: string;
  createdAt: number;
}

export class RunIndex extends DurableObject {
  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)",
    );
  }

  add(id: string, createdAt: number): void {
    this.ctx.storage.sql.exec(
      "INSERT OR IGNORE INTO runs (id, created_at) VALUES (?, ?)",
      id,
      createdAt,
    );
  }

  /** Newest first. */
  list(): IndexedRun[] {
    return this.ctx.storage.sql
      .exec<{ id: string; created_at: number }>(
        "SELECT id, created_at FROM runs ORDER BY created_at DESC",
      )
      .toArray()
      .map((r) => ({ id: r.id, createdAt: r.created_at }));
  }
}
