// The Durable Object Store adapter inside workerd: the Store's contract on a real DO SQLite
// database, then the core (coordinator, runs, scheduler, workers on a simulated clock) training
// on it and resuming after a restart, as the Node suite does on MemoryStore.
import { Simulation } from "@pangea/coordinator/simulation";
import { mlpSpec } from "@pangea/shared";
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DoSqliteStore } from "./do-store.ts";
import type { RunObject } from "./run-object.ts";

const runs = (env as unknown as { RUNS: DurableObjectNamespace<RunObject> }).RUNS;

/** Runs `fn` inside a fresh run's Durable Object, with the Store on its SQLite storage. */
function inObject<T>(name: string, fn: (store: DoSqliteStore) => T): Promise<T> {
  const stub = runs.get(runs.idFromName(name));
  return runInDurableObject(stub, (_instance, state) => fn(new DoSqliteStore(state.storage.sql)));
}

describe("the Durable Object store", () => {
  it("keeps a run's snapshot, in chunks under the row limit, metrics and sessions", async () => {
    await inObject("contract", (store) => {
      const sim = new Simulation(store);
      // 407,050 parameters: two chunks each for the parameters and both moments.
      const run = sim.coordinator.createRun({
        name: "big",
        model: mlpSpec([784, 512, 10], { seed: 5 }),
        dataset: "blobs",
        stop: { versions: 3 },
      });
      const loaded = store.loadRun(run.id)!;
      expect(loaded.parameters.length).toBe(407_050);
      expect([...loaded.parameters.subarray(262_140, 262_150)]).toEqual([
        ...run.parameters.subarray(262_140, 262_150),
      ]);
      expect(store.listRuns().map((r) => r.id)).toEqual([run.id]);
      sim.addWorker({ runId: run.id });
      sim.runUntil(() => run.record.state === "finished");
      const points = store.metrics(run.id);
      // A point per committed version, and the evaluation of the last (the run finished).
      expect(points.filter((p) => p.testLoss === undefined).map((p) => p.version)).toEqual([
        1, 2, 3,
      ]);
      expect(points.filter((p) => p.testLoss !== undefined).map((p) => p.version)).toEqual([3]);
      expect(store.metrics(run.id, 1).map((p) => p.version)).toEqual([3]);
      const sessions = store.sessions(run.id);
      expect(sessions).toHaveLength(1);
      expect(sessions[0]!.stats.id).toMatch(/^s_/);
      expect(store.loadRun(run.id)!.record.version).toBe(3);
    });
  });

  it("trains with the core on it and resumes at the committed version after a restart", async () => {
    await inObject("train", (store) => {
      const sim = new Simulation(store);
      const run = sim.coordinator.createRun({
        name: "blobs",
        model: mlpSpec([16, 24, 4], { seed: 3 }),
        dataset: "blobs",
        batchSize: 32,
        evaluateEvery: 5,
        strategy: { kind: "asynchronous", maxStaleness: 4, buffer: 1 },
        optimizer: { learningRate: 3e-3 },
        stop: { targetAccuracy: 0.9, versions: 2000 },
      });
      const workers = [sim.addWorker({ runId: run.id }), sim.addWorker({ runId: run.id })];
      sim.runUntil(() => run.record.version >= 12);
      const committed = store.loadRun(run.id)!;
      sim.restart();
      const resumed = sim.coordinator.runs.get(run.id)!;
      expect(resumed.record.version).toBe(committed.record.version);
      expect([...resumed.parameters]).toEqual([...committed.parameters]);
      for (const w of workers) {
        sim.dropWorker(w);
        sim.addWorker({ runId: run.id, sessionToken: w.sessionToken });
      }
      sim.runUntil(() => resumed.record.state === "finished");
      expect(resumed.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
    });
  });
});
