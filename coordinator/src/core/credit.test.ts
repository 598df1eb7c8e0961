// Verified credit: sessions earn the samples the coordinator handed them and accepted; the part
// that redundancy checked is kept apart; freeloaders (updates not computed on their lease) are
// caught by redundancy at its rate and earn nothing. The public status shows contributors only
// as the leaderboard does.
import { mlpSpec } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { Simulation } from "../testing/simulation.ts";
import { withStore } from "../testing/with-store.ts";
import { Collusion } from "../worker/collusion.ts";
import { displayName, type leaderboard } from "./credit.ts";

describe("credit", () => {
  it(
    "is earned by honest sessions, verified in part, and forfeited by every kind of freeloader",
    () =>
      withStore((store) => {
        const sim = new Simulation(store);
        const run = sim.coordinator.createRun({
          name: "credited",
          model: mlpSpec([16, 24, 4], { seed: 3 }),
          dataset: "blobs",
          batchSize: 16,
          strategy: { kind: "synchronous", targetUpdates: 6, stragglerMs: 2000 },
          aggregation: { kind: "median" },
          optimizer: { learningRate: 3e-3 },
          redundancy: 0.5,
          quarantineAfter: 3,
          evaluateEvery: 50,
          stop: { versions: 150 },
        });
        const honest = Array.from({ length: 6 }, (_, i) =>
          sim.addWorker({ runId: run.id, displayName: `honest ${i}\u0007\u202e` }),
        );
        const copying = new Collusion({ kind: "copy" }, 1);
        const freeloaders = [
          sim.addWorker({ runId: run.id, attacks: ["stale"], displayName: "stale" }),
          sim.addWorker({ runId: run.id, attacks: ["random"], displayName: "random" }),
          sim.addWorker({ runId: run.id, collusion: copying, displayName: "copy" }),
        ];
        sim.runUntil(() => run.record.state === "finished", 10_000_000);
        const byName = new Map([...run.sessions.values()].map((s) => [s.name, s]));
        console.log(
          "[name, updates accepted, strikes, copies compared, credit, verified, quarantined]",
          JSON.stringify(
            [...run.sessions.values()].map((s) => [
              s.name,
              s.updatesAccepted,
              s.strikes,
              s.replicasChecked,
              s.credit,
              s.verifiedCredit,
              s.quarantined,
            ]),
          ),
        );
        for (const name of ["stale", "random", "copy"]) {
          const s = byName.get(name)!;
          expect(s.quarantined, name).toBe(true);
          expect(s.credit, name).toBe(0);
          expect(s.verifiedCredit, name).toBe(0);
          // Caught at redundancy's rate: three strikes came within a few dozen updates.
          expect(s.replicasChecked, name).toBeGreaterThanOrEqual(3);
          expect(s.updatesAccepted, name).toBeLessThan(40);
        }
        let credited = 0;
        for (let i = 0; i < 6; i++) {
          // Control and direction-override characters are not shown.
          const s = byName.get(`honest ${i}`)!;
          expect(s.quarantined).toBe(false);
          expect(s.credit!).toBeGreaterThan(0);
          expect(s.verifiedCredit!).toBeGreaterThan(0);
          expect(s.verifiedCredit!).toBeLessThanOrEqual(s.credit!);
          // Never more than the samples of the leases it was handed and had accepted (first copies
          // and replicas that agreed).
          expect(s.credit!).toBeLessThanOrEqual(16 * (s.updatesAccepted + s.replicasChecked!));
          expect(s.strikes).toBe(0);
          credited += s.credit!;
        }
        expect(credited).toBeGreaterThan(0.5 * run.record.counters.samples);
        // Disputes were settled by a third copy, so honest sessions took no strikes for them.
        const c = run.record.counters;
        expect(c.replicaDisputes!).toBeGreaterThanOrEqual(9);
        expect(c.replicaDisputesSettled!).toBeGreaterThanOrEqual(9);
        for (const w of [...honest, ...freeloaders]) expect(w.acks).toBeGreaterThan(0);

        // The public view: the leaderboard (name, samples, verified), the counts, nothing else.
        const view = run.status(sim.clock.t) as Record<string, unknown>;
        expect(view.workers).toBeUndefined();
        const rows = view.leaderboard as ReturnType<typeof leaderboard>;
        expect(rows.map((r) => r.name).sort()).toEqual(
          Array.from({ length: 6 }, (_, i) => `honest ${i}`),
        );
        for (const r of rows)
          expect(Object.keys(r).sort()).toEqual(["id", "name", "samples", "verified"]);
        expect(rows.map((r) => r.samples)).toEqual(
          [...rows.map((r) => r.samples)].sort((a, b) => b - a),
        );
        // The quarantined freeloaders were let go.
        expect(view.contributors).toEqual({ connected: 6, total: 9 });
        const admin = run.status(sim.clock.t, "admin") as Record<string, unknown>;
        expect((admin.workers as unknown[]).length).toBe(9);
      }),
    300_000,
  );

  // A freeloader's chance of being checked is the share of its batches that get a second copy.
  // Replicas used to be leased only while the first copy was still being computed, on the same
  // version: a synchronous run checked 0.29 of its batches at redundancy 0.5, an asynchronous one
  // 0.03, and a freeloader that answered at once was never checked.
  it.each([
    ["synchronous", { kind: "synchronous", targetUpdates: 6, stragglerMs: 2000 }],
    ["asynchronous, a version per update", { kind: "asynchronous", buffer: 1, maxStaleness: 8 }],
    ["asynchronous, a version per 4 updates", { kind: "asynchronous", buffer: 4 }],
  ] as const)("checks the configured share of batches: %s", (_, strategy) =>
    withStore((store) => {
      for (const redundancy of [0.25, 0.5]) {
        const sim = new Simulation(store);
        const run = sim.coordinator.createRun({
          name: "checked",
          model: mlpSpec([16, 24, 4], { seed: 3 }),
          dataset: "blobs",
          batchSize: 16,
          strategy,
          aggregation: { kind: "median" },
          optimizer: { learningRate: 3e-3 },
          redundancy,
          quarantineAfter: 3,
          evaluateEvery: 50,
          stop: { versions: 120 },
        });
        for (let i = 0; i < 7; i++) sim.addWorker({ runId: run.id });
        sim.addWorker({ runId: run.id, attacks: ["random"], displayName: "random" });
        sim.runUntil(() => run.record.state === "finished", 10_000_000);
        const c = run.record.counters;
        const rate = (c.replicaComparisons ?? 0) / c.updatesAccepted;
        console.log(strategy.kind, redundancy, "checked", rate.toFixed(3), "of", c.updatesAccepted);
        expect(rate).toBeGreaterThan(redundancy - 0.08);
        expect(rate).toBeLessThan(redundancy + 0.08);
        const freeloader = [...run.sessions.values()].find((s) => s.name === "random")!;
        expect(freeloader.quarantined).toBe(true);
        expect(freeloader.credit).toBe(0);
        for (const s of run.sessions.values())
          if (s.name !== "random") expect([s.name, s.strikes]).toEqual([s.name, 0]);
      }
    }),
  );

  // Credit used to be written only when a session joined, left or was quarantined: a crash
  // lost everything earned since, though every update behind it had been acknowledged.
  it("is written with each commit, so a crash loses none that was acknowledged", () =>
    withStore((store) => {
      const sim = new Simulation(store);
      const run = sim.coordinator.createRun({
        name: "durable credit",
        model: mlpSpec([16, 24, 4], { seed: 3 }),
        dataset: "blobs",
        batchSize: 16,
        strategy: { kind: "synchronous", targetUpdates: 4, stragglerMs: 2000 },
        redundancy: 0.5,
        evaluateEvery: 50,
      });
      const workers = Array.from({ length: 5 }, () => sim.addWorker({ runId: run.id }));
      // Right after a commit: every update and copy it acknowledged is credited in memory.
      sim.runUntil(() => run.record.version >= 30, 10_000_000);
      const acknowledged = new Map(
        [...run.sessions.values()].map((s) => [s.id, [s.credit ?? 0, s.verifiedCredit ?? 0]]),
      );
      expect([...acknowledged.values()].reduce((a, [c]) => a + (c ?? 0), 0)).toBeGreaterThan(0);
      expect(workers.every((w) => w.acks > 0)).toBe(true);
      sim.restart(); // no leave, no flush: the process died
      const stored = new Map(
        store
          .sessions(run.id)
          .map((r) => [r.stats.id, [r.stats.credit ?? 0, r.stats.verifiedCredit ?? 0]]),
      );
      expect(stored).toEqual(acknowledged);
    }));

  it("cleans a visitor's name for display", () => {
    expect(displayName("  Ada \u0000 Lovelace\n")).toBe("Ada Lovelace");
    expect(displayName("\u202eevil")).toBe("evil");
    expect(displayName("x".repeat(40))).toBe("x".repeat(32));
    expect(displayName(undefined)).toBe("");
  });
});
