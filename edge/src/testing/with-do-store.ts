// The core's suite on the Durable Object adapter: each test runs inside its own run object, on
// that object's SQLite storage (edge/vitest.config.ts puts this in place of
// coordinator/src/testing/with-store.ts).
import type { Store } from "@pangea/coordinator/ports";
import { env, runInDurableObject } from "cloudflare:test";
import { DoSqliteStore } from "../do-store.ts";
import type { RunObject } from "../run-object.ts";

let objects = 0;

export function withStore<T>(test: (store: Store) => T): Promise<T> {
  const ns = (env as unknown as { RUNS: DurableObjectNamespace<RunObject> }).RUNS;
  const stub = ns.get(ns.idFromName(`suite-${++objects}`));
  return runInDurableObject(stub, (_instance, state) => test(new DoSqliteStore(state.storage.sql)));
}
