// Updates reduced among peers, in the core's simulation (and so inside workerd too): members
// declare their updates, reduce the parts of their group over the simulated peer network, and
// the coordinator takes one update per group when each part's two owners agree. A member that
// sends different bytes to different owners, an owner that reduces wrongly and a member that
// leaves mid-reduce are each caught (struck where the evidence names someone), fall back to
// whole updates, and leave the run to reach its target with every batch committed once.
import { mlpSpec } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import type { HeadlessWorker } from "../worker/headless-worker.ts";
import { type PeerBehaviour, Simulation } from "../testing/simulation.ts";
import { withStore } from "../testing/with-store.ts";

// Wide enough (17,668 parameters) that an update, not the messages around it, is most of the bytes.
const model = mlpSpec([16, 1024, 4], { seed: 3 });

type Member = { peer: PeerBehaviour; misreduce?: boolean };

function start(
  sim: Simulation,
  members: Member[],
  reduceGroup: number,
  versions = 2000,
  extra: Partial<Parameters<Simulation["coordinator"]["createRun"]>[0]> = {},
) {
  const run = sim.coordinator.createRun({
    name: "reduce",
    model,
    dataset: "blobs",
    batchSize: 32,
    evaluateEvery: 5,
    strategy: { kind: "synchronous", targetUpdates: members.length, stragglerMs: 5000 },
    optimizer: { learningRate: 3e-3 },
    stop: { targetAccuracy: 0.9, versions },
    peers: true,
    reduceGroup,
    ...extra,
  });
  const workers = members.map((m) =>
    sim.addWorker({ runId: run.id, peer: m.peer, ...(m.misreduce ? { misreduce: true } : {}) }),
  );
  return { run, workers };
}

function report(label: string, run: ReturnType<typeof start>["run"]) {
  const c = run.record.counters;
  const t = run.traffic;
  console.log(
    `${label}: ${run.record.version} versions, accuracy ${run.record.evaluation?.accuracy}, groups reduced ${c.groupsReduced ?? 0}, fallbacks ${c.groupFallbacks ?? 0}, coordinator ${(t.bytesIn / c.samples).toFixed(0)} B in per sample, peers ${(t.peerBytes / 1e6).toFixed(2)} MB`,
  );
}

/** Every committed batch of every finished epoch was committed exactly once. */
function committedOnce(run: ReturnType<typeof start>["run"]) {
  const commits = run.record.counters.batchCommits ?? {};
  const batches = Math.ceil(run.data.trainCount / 32);
  for (let e = 0; e < run.epoch; e++) expect(commits[e]).toBe(batches);
}

describe("updates reduced among peers (simulated network)", () => {
  it("reduces honest groups: one update per group reaches the coordinator, and the run learns", () =>
    withStore(async (store) => {
      const honest: Member[] = Array.from({ length: 4 }, () => ({ peer: "honest" }));
      const sim = new Simulation(store);
      const { run, workers } = start(sim, honest, 4);
      await sim.runUntilSettled(() => run.record.state === "finished");
      report("reduced", run);
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      const c = run.record.counters;
      expect(c.groupsReduced).toBeGreaterThanOrEqual(run.record.version);
      expect(c.groupFallbacks ?? 0).toBe(0);
      expect(run.traffic.peerBytes).toBeGreaterThan(0);
      for (const w of workers) expect(w.reductions.parts).toBeGreaterThan(0);
      committedOnce(run);

      // The same run without reduction: every member's update comes whole.
      const plain = new Simulation(store);
      const whole = start(plain, honest, 0);
      await plain.runUntilSettled(() => whole.run.record.state === "finished");
      report("whole", whole.run);
      const perSample = (r: typeof run) => r.traffic.bytesIn / r.record.counters.samples;
      // Four updates in, against one reduced update (in parts) and four small declarations.
      expect(perSample(whole.run) / perSample(run)).toBeGreaterThanOrEqual(3);
    }));

  it("reduces local-SGD deltas, and keeps a robust rule's meaning inside each group", () =>
    withStore(async (store) => {
      const honest: Member[] = Array.from({ length: 6 }, () => ({ peer: "honest" }));
      for (const extra of [
        {
          strategy: {
            kind: "localSgd" as const,
            targetUpdates: 6,
            innerSteps: 2,
            stragglerMs: 5000,
          },
          local: { kind: "sgd" as const, learningRate: 0.05 },
          optimizer: { kind: "sgd" as const, learningRate: 1 },
        },
        { aggregation: { kind: "median" as const } },
      ]) {
        const sim = new Simulation(store);
        const { run } = start(sim, honest, 3, 2000, extra);
        await sim.runUntilSettled(() => run.record.state === "finished");
        report(extra.aggregation ? "median in groups of 3" : "local SGD in groups of 3", run);
        expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
        // Two groups a version, each one vote.
        expect(run.record.counters.groupsReduced).toBeGreaterThanOrEqual(2 * run.record.version);
        committedOnce(run);
      }
    }));

  it("catches a member that sends different bytes to the two owners of a part, and strikes it", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const { run, workers } = start(
        sim,
        [{ peer: "twoFaced" }, { peer: "honest" }, { peer: "honest" }, { peer: "honest" }],
        4,
      );
      await sim.runUntilSettled(() => run.record.state === "finished");
      report("two-faced", run);
      const stats = (w: HeadlessWorker) => run.sessions.get(w.sessionId)!;
      expect(run.record.counters.groupFallbacks).toBeGreaterThanOrEqual(2);
      expect(stats(workers[0]!).strikes).toBeGreaterThanOrEqual(1);
      for (const w of workers.slice(1)) expect(stats(w).strikes).toBe(0);
      // Its groups fell back to whole updates, which counted: the run reached its target.
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      committedOnce(run);
    }));

  it("catches an owner that reduces wrongly, strikes it, and commits what the members sent", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const { run, workers } = start(
        sim,
        [
          { peer: "honest" },
          { peer: "honest", misreduce: true },
          { peer: "honest" },
          { peer: "honest" },
        ],
        4,
      );
      await sim.runUntilSettled(() => run.record.state === "finished");
      report("misreducing", run);
      const stats = (w: HeadlessWorker) => run.sessions.get(w.sessionId)!;
      expect(run.record.counters.groupFallbacks).toBeGreaterThanOrEqual(1);
      expect(stats(workers[1]!).strikes).toBeGreaterThanOrEqual(1);
      for (const i of [0, 2, 3]) expect(stats(workers[i]!).strikes).toBe(0);
      // Every group it reduced in fell back; the others' groups were taken.
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      committedOnce(run);
    }));

  it("falls back when a member leaves mid-reduce; nothing is lost or counted twice", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const members: Member[] = Array.from({ length: 6 }, () => ({ peer: "honest" }));
      const { run, workers } = start(sim, members, 3);
      // Two members drop while their groups reduce (after their declaration, before the ack).
      let dropped = 0;
      const used = new Set<number>();
      await sim.runUntilSettled(() => {
        const group = [...run.reduce!.reducing.values()].find((g) => !used.has(g.id));
        if (dropped < 2 && group && run.record.version >= 2) {
          used.add(group.id);
          const leaving = workers.find((w) => w.sessionId === group.members[0]!.sessionId)!;
          if (sim.workers.has(leaving)) {
            sim.dropWorker(leaving);
            dropped++;
          }
        }
        return dropped === 2;
      });
      await sim.runUntilSettled(() => run.record.state === "finished");
      report("two left", run);
      expect(dropped).toBe(2);
      expect(run.record.counters.groupFallbacks).toBeGreaterThanOrEqual(2);
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      committedOnce(run);
    }));

  it("stops grouping a member whose peers never get its bytes: it sends its updates whole", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const { run, workers } = start(
        sim,
        [{ peer: "silent" }, { peer: "honest" }, { peer: "honest" }, { peer: "honest" }],
        4,
        30,
      );
      await sim.runUntilSettled(() => run.record.state === "finished");
      report("one silent", run);
      const stats = (w: HeadlessWorker) => run.sessions.get(w.sessionId)!;
      // Not struck (a stalled tab is not a liar), and left out once its transfers kept failing:
      // the others' groups are reduced again.
      for (const w of workers) expect(stats(w).strikes).toBe(0);
      expect(stats(workers[0]!).updatesAccepted).toBeGreaterThan(0);
      expect(run.record.counters.groupsReduced).toBeGreaterThan(0);
      committedOnce(run);
    }));

  it("refuses a declaration in a run that does not reduce, a malformed one, and a run it cannot serve", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const declaration = (leaseId: number, batchId: string, bytes: number) => ({
        gradientId: "x",
        gradients: [],
        loss: 1,
        timestamp: 0,
        nodeId: "",
        batchId,
        leaseId,
        baseVersion: 0,
        sampleCount: 32,
        encoding: "fp32" as const,
        kind: "gradient" as const,
        pieceHashes: new Uint8Array(bytes),
      });
      for (const group of [0, 2]) {
        const { run } = start(sim, [{ peer: "honest" }], group);
        sim.runUntil(() => run.scheduler.liveCount > 0);
        const lease = run.scheduler.liveLeases()[0]!;
        const out = run.submit(
          lease.sessionId,
          "m1",
          declaration(lease.id, `${lease.epoch}:${lease.batch}`, 3),
          sim.clock.now(),
        );
        expect(out[0]!.payload).toMatchObject({
          type: "error",
          code: group === 0 ? "unsupportedMessage" : "shapeMismatch",
        });
      }
      expect(() =>
        sim.coordinator.createRun({
          name: "bad",
          model,
          dataset: "blobs",
          peers: false,
          reduceGroup: 4,
          aggregation: { kind: "centeredClip" },
        }),
      ).toThrow(/reduceGroup: needs peers.*reduceGroup: a coordinate-wise aggregation/);
    }));
});
