// Evaluation leases: a version's held-out loss and sample measured by contributors, each part by
// two sessions and compared. In Node and inside workerd, with the real codec and core, and the
// CPU reference as the workers.
import { measureHeldOut } from "@pangea/shaders/reference";
import { type EvaluationReport, initParameters } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { lines, linesRun, linesShard, tinyGpt } from "../testing/lines.ts";
import { withStore } from "../testing/with-store.ts";
import { type EvaluationJob, evaluationParts, runEvaluation } from "./evaluation.ts";
import { ContributorEvaluation, WINDOWS_PER_LEASE } from "./evaluation-leases.ts";
import type { Store } from "./ports.ts";
import type { RunConfigInput } from "./run-config.ts";

const bytes = linesShard;
const shard = lines;

function job(): EvaluationJob {
  return {
    runId: "r",
    version: 3,
    model: tinyGpt,
    parameters: initParameters(tinyGpt, 9),
    data: { name: "lines", bytes, sha256: "", shard },
    seed: 4,
  };
}

describe("an evaluation measured by contributors", () => {
  it("is the coordinator's evaluation, to the last digit, once two sessions agree on each part", () => {
    const j = job();
    const parts = evaluationParts(j, WINDOWS_PER_LEASE);
    // 32 windows in parts of 8, then the sample.
    expect(parts.map((p) => [p.offsets.length, p.sampleTokens])).toEqual([
      [8, 0],
      [8, 0],
      [8, 0],
      [8, 0],
      [0, 160],
    ]);
    const e = new ContributorEvaluation(j, parts, 10_000);
    let lease = 0;
    for (const session of ["a", "b"])
      for (;;) {
        const part = e.offer(session, ++lease, 5_000);
        if (!part) break;
        const m = measureHeldOut(j.model, j.parameters, shard, part);
        const report: EvaluationReport = { leaseId: lease, version: 3, ...m };
        expect(e.report(session, report, 100)).toEqual({ ok: true, strikes: [] });
      }
    expect(e.done).toBe(true);
    const mine = runEvaluation(j);
    const theirs = e.result();
    expect(theirs.loss).toBeCloseTo(mine.loss, 12);
    expect(theirs.accuracy).toBe(mine.accuracy);
    expect(theirs.sample).toBe(mine.sample);
    expect(theirs.measured).toBe(mine.measured);
    expect(theirs.where).toMatch(/^by contributors: 5 parts/);
  });

  it("settles a disagreement with a third session, strikes the odd one out, refuses what cannot be", () => {
    const j = job();
    const parts = evaluationParts(j, WINDOWS_PER_LEASE).slice(0, 1);
    const e = new ContributorEvaluation(j, parts, 10_000);
    const honest = measureHeldOut(j.model, j.parameters, shard, parts[0]!);
    const report = (leaseId: number, loss: number, correct = honest.correct) => ({
      leaseId,
      version: 3,
      loss,
      correct,
      sample: "",
    });
    // Each session one lease at a time, never twice on a part; two at first.
    expect(e.offer("liar", 1, 5_000)).toBe(parts[0]);
    expect(e.offer("liar", 9, 5_000)).toBeUndefined();
    expect(e.offer("a", 2, 5_000)).toBe(parts[0]);
    expect(e.offer("b", 3, 5_000)).toBeUndefined();
    // Not its lease; not this version; a count that cannot be: refused, nothing kept.
    expect(e.report("a", report(1, honest.loss), 100)).toMatchObject({ code: "unknownLease" });
    expect(e.report("a", { ...report(2, honest.loss), version: 2 }, 100)).toMatchObject({
      code: "unknownLease",
    });
    expect(e.offer("a", 4, 5_000)).toBeUndefined();
    expect(e.report("liar", report(1, honest.loss * 0.9), 100)).toEqual({ ok: true, strikes: [] });
    expect(e.report("a", report(2, honest.loss), 100)).toEqual({ ok: true, strikes: [] });
    // The two disagree: a third session settles it, and the liar is struck.
    expect(e.done).toBe(false);
    expect(e.offer("b", 5, 5_000)).toBe(parts[0]);
    expect(e.offer("c", 6, 5_000)).toBeUndefined();
    expect(e.report("b", report(5, honest.loss), 100)).toEqual({ ok: true, strikes: ["liar"] });
    expect(e.done).toBe(true);
    expect(e.result().loss).toBeCloseTo(honest.loss / 8, 12);

    const f = new ContributorEvaluation(j, parts, 10_000);
    f.offer("x", 7, 5_000);
    f.offer("y", 8, 50);
    expect(f.report("x", report(7, honest.loss, 8 * 16 + 1), 100)).toMatchObject({
      code: "claimMismatch",
    });
    expect(f.report("y", report(8, Number.NaN), 100)).toMatchObject({ code: "leaseExpired" });
    // Four reports that never agree: the evaluation goes back to the coordinator.
    const g = new ContributorEvaluation(j, parts, 10_000);
    for (const [i, s] of ["p", "q", "r", "s"].entries()) {
      expect(g.offer(s, 20 + i, 5_000)).toBe(parts[0]);
      g.report(s, report(20 + i, honest.loss + i), 100);
    }
    expect(g.failed).toBe(true);
    expect(g.offer("t", 30, 5_000)).toBeUndefined();
  });
});

/** The tiny GPT whose evaluations contributors measure, in a simulation over `store`. */
function contributorsRun(store: Store, config: RunConfigInput = {}) {
  return linesRun(
    {
      name: "evaluated by contributors",
      strategy: { kind: "synchronous", targetUpdates: 3, stragglerMs: 5000 },
      evaluateBy: "contributors",
      evaluateEvery: 5,
      stop: { versions: 1000 },
      ...config,
    },
    store,
  );
}

describe("a run whose contributors evaluate it", () => {
  it("trains while its sessions measure its versions, and outvotes a session that lies", () =>
    withStore((store) => {
      const { sim, run } = contributorsRun(store, { quarantineAfter: 3 });
      for (let i = 0; i < 3; i++) sim.addWorker({ runId: run.id });
      const liar = sim.addWorker({ runId: run.id, lieAboutEvaluation: true });
      sim.runUntil(() => (run.record.evaluation?.version ?? 0) >= 25);
      const e = run.record.evaluation!;
      expect(e.where).toMatch(/^by contributors: 5 parts/);
      const c = run.record.counters;
      expect(c.evaluationFallbacks ?? 0).toBe(0);
      expect(c.evaluationReports).toBeGreaterThanOrEqual(5 * 2 * 5);
      // The liar's reports disagreed with two honest ones: struck each time, then quarantined.
      expect(c.evaluationDisagreements).toBeGreaterThanOrEqual(3);
      const liarStats = run.sessions.get(liar.sessionId)!;
      expect(liarStats.quarantined).toBe(true);
      // The evaluations are the honest ones: learning, and on the chart.
      const points = store.metrics(run.id).filter((p) => p.testLoss !== undefined);
      expect(points.map((p) => p.version)).toEqual(expect.arrayContaining([5, 10, 15, 20, 25]));
      expect(points.at(-1)!.testLoss!).toBeLessThan(points[0]!.testLoss!);
      expect(e.sample!.length).toBeGreaterThan(100);
    }));

  it("is evaluated by the coordinator where contributors cannot: one session, or reports that never come", () =>
    withStore((store) => {
      const { sim, run } = contributorsRun(store, {
        strategy: { kind: "synchronous", targetUpdates: 1, stragglerMs: 5000 },
        leaseMs: 2000,
      });
      // One evaluating session: the coordinator measures, as if the run asked it to.
      sim.addWorker({ runId: run.id });
      sim.addWorker({ runId: run.id, evaluate: undefined });
      sim.runUntil(() => (run.record.evaluation?.version ?? 0) >= 5);
      expect(run.record.evaluation!.where ?? "").not.toMatch(/contributors/);
      // Two sessions that take evaluation leases and never answer: taken back at the deadline.
      const stalled = () => new Promise<never>(() => {});
      for (let i = 0; i < 2; i++) sim.addWorker({ runId: run.id, evaluate: stalled });
      const at = run.record.version;
      sim.runUntil(() => (run.record.evaluation?.version ?? 0) > at);
      expect(run.record.counters.evaluationFallbacks).toBeGreaterThanOrEqual(1);
      expect(run.record.evaluation!.where).toMatch(/contributors could not finish it/);
    }));
});
