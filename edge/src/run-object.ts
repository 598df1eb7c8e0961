// One run's Durable Object. For now it owns the run's storage through DoSqliteStore; hosting the
// coordinator core (hibernatable WebSockets, alarms) is the next step of the edge.
import { DurableObject } from "cloudflare:workers";
import { DoSqliteStore } from "./do-store.ts";

export class RunObject extends DurableObject<Record<string, unknown>> {
  readonly store: DoSqliteStore;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.store = new DoSqliteStore(ctx.storage.sql);
  }
}
