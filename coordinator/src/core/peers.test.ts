// Parameter frames between peers, in the core's simulation (and so inside workerd too): leases
// name holders of the version, receivers check the frame's hash, and what goes wrong between
// peers (a frame with a flipped byte, a peer that never answers) falls back to the coordinator,
// strikes the liar, and leaves the run to reach its target. The same over real WebRTC is
// node/peers.test.ts and the Playwright peers spec.
import { mlpSpec } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { type PeerBehaviour, Simulation } from "../testing/simulation.ts";
import { withStore } from "../testing/with-store.ts";

const model = mlpSpec([16, 24, 4], { seed: 3 });

async function train(sim: Simulation, peers: PeerBehaviour[]) {
  const run = sim.coordinator.createRun({
    name: "peers",
    model,
    dataset: "blobs",
    batchSize: 32,
    evaluateEvery: 5,
    strategy: { kind: "synchronous", targetUpdates: peers.length, stragglerMs: 5000 },
    optimizer: { learningRate: 3e-3 },
    stop: { targetAccuracy: 0.9, versions: 2000 },
    peers: true,
  });
  const workers = peers.map((peer) => sim.addWorker({ runId: run.id, peer }));
  await sim.runUntilSettled(() => run.record.state === "finished");
  const stats = (i: number) => run.sessions.get(workers[i]!.sessionId)!;
  console.log(
    `${peers.join(",")}: ${run.record.version} versions, accuracy ${run.record.evaluation?.accuracy}, ${workers.map((w) => w.peerFrames.fetched).join("/")} frames from peers, coordinator frames ${sim.coordinator.counters.parameterFrames}, fallbacks ${JSON.stringify(sim.coordinator.counters.peerFallbacks)}, strikes ${sim.coordinator.counters.peerStrikes}`,
  );
  return { run, workers, stats, counters: sim.coordinator.counters };
}

describe("parameter frames between peers (simulated network)", () => {
  it("spreads each version among honest peers: the coordinator sends a frame once or twice per version", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const { run, workers, counters } = await train(sim, ["honest", "honest", "honest", "honest"]);
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      const fetched = workers.reduce((n, w) => n + w.peerFrames.fetched, 0);
      expect(fetched).toBeGreaterThan(run.record.version);
      expect(counters.peerFallbacks).toEqual({});
      // Four sessions need every version; the coordinator sent fewer than two frames a version.
      expect(counters.parameterFrames).toBeLessThan(2 * run.record.version + 4);
      expect(run.traffic.peerBytes).toBeGreaterThan(0);
    }));

  it("catches a peer whose frames do not match the hash, and strikes it", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const { run, workers, stats, counters } = await train(sim, [
        "liar",
        "honest",
        "honest",
        "honest",
      ]);
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(counters.peerFallbacks.badHash ?? 0).toBeGreaterThanOrEqual(2);
      expect(counters.peerStrikes).toBeGreaterThanOrEqual(1);
      expect(stats(0).strikes).toBeGreaterThanOrEqual(1);
      for (const i of [1, 2, 3]) expect(stats(i).strikes).toBe(0);
      // Nothing it served was trained on: no peer bytes are credited to it.
      expect(stats(0).peerBytesOut ?? 0).toBe(0);
      expect(workers[0]!.peerFrames.fetched).toBeGreaterThanOrEqual(0);
    }));

  it("falls back past a peer that never answers, which then serves no one", () =>
    withStore(async (store) => {
      const sim = new Simulation(store);
      const { run, stats, counters } = await train(sim, ["silent", "honest", "honest", "honest"]);
      expect(run.record.evaluation!.accuracy).toBeGreaterThanOrEqual(0.9);
      const timeouts = counters.peerFallbacks.timeout ?? 0;
      expect(timeouts).toBeGreaterThanOrEqual(1);
      // After a few failed transfers it is left out of them (UNREACHABLE_AFTER), not struck.
      expect(timeouts).toBeLessThanOrEqual(6);
      expect(stats(0).strikes).toBe(0);
      expect(stats(0).peerBytesOut ?? 0).toBe(0);
    }));
});
