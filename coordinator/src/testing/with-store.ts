// The Store the core's suite runs on. Here: a fresh MemoryStore, synchronously. The edge's
// workerd project replaces this module with one that runs each test inside a Durable Object on
// its SQLite storage (edge/src/testing/with-do-store.ts), so the same suite covers both adapters.
import { MemoryStore } from "../core/memory-store.ts";
import type { Store } from "../core/ports.ts";

export function withStore<T>(test: (store: Store) => T): T | Promise<T> {
  return test(new MemoryStore());
}
