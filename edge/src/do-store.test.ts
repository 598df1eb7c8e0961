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
  it("groups a moment's versions into one flush, sends nothing before it, and tells no one of a failed one", async () => {
    const stub = runs.get(runs.idFromName("group"));
    await runInDurableObject(stub, (_instance, state) => {
      const moments: (() => void)[] = [];
      const store = new DoSqliteStore(state.storage.sql, {
        schedule: (flush) => moments.push(flush),
        transaction: (fn) => state.storage.transactionSync(fn),
        failed: (e) => {
          throw e;
        },
      });
      // Another reader of the same storage, which sees only what was written.
      const disk = new DoSqliteStore(state.storage.sql);
      const sim = new Simulation(store, { commits: store });
      const run = sim.coordinator.createRun({
        name: "grouped",
        model: mlpSpec([16, 24, 4], { seed: 3 }),
        dataset: "blobs",
        batchSize: 32,
        strategy: { kind: "asynchronous", maxStaleness: 8, buffer: 1 },
        stop: { versions: 40 },
      });
      expect(store.pending).toBe(true);
      expect(disk.loadRun(run.id)).toBeUndefined();
      expect(moments).toHaveLength(1);
      moments.shift()!();
      expect(disk.loadRun(run.id)!.record.version).toBe(0);

      // Whatever reaches a worker leaves when the version it knows of is on disk.
      let sends = 0;
      const push = sim.queue.push.bind(sim.queue);
      sim.queue.push = (...deliveries) => {
        for (const d of deliveries)
          if (d.to !== "coordinator") {
            sends++;
            expect(disk.loadRun(run.id)!.record.version).toBe(run.record.version);
          }
        return push(...deliveries);
      };
      for (let i = 0; i < 4; i++) sim.addWorker({ runId: run.id });
      sim.runUntil(() => {
        // A moment later: once nothing is in flight, the timer's flush runs.
        if (sim.queue.length === 0) while (moments.length > 0) moments.shift()!();
        return run.record.state === "finished";
      });
      expect(run.record.version).toBe(40);
      expect(sends).toBeGreaterThan(80);
      // Four workers' updates close several versions between two flushes.
      expect(store.flushes).toBeLessThan(run.record.version);
      expect(disk.loadRun(run.id)!.record.version).toBe(40);
      expect(disk.metrics(run.id).filter((p) => p.testLoss === undefined)).toHaveLength(40);

      // A flush that fails is rolled back, and whoever waited for it is never told.
      const failures: unknown[] = [];
      const failing = new DoSqliteStore(state.storage.sql, {
        schedule: () => {},
        transaction: (fn) =>
          state.storage.transactionSync(() => {
            fn();
            throw new Error("the disk is full");
          }),
        failed: (e) => failures.push(e),
      });
      const loaded = disk.loadRun(run.id)!;
      loaded.record.version = 41;
      failing.commitVersion(loaded);
      let told = false;
      failing.whenDurable(() => {
        told = true;
      });
      failing.flush();
      expect(failures.map((e) => (e as Error).message)).toEqual(["the disk is full"]);
      expect(told).toBe(false);
      expect(failing.pending).toBe(false);
      expect(disk.loadRun(run.id)!.record.version).toBe(40);
    });
  });
});
