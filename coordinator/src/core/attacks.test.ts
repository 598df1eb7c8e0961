// Attackers inside the honest spread (ALIE, IPM) against every robust rule, on MNIST in the
// simulation, in Node and inside workerd. The README's table (longer runs, more rules) is
// `pnpm bench:attacks`.
import { describe, expect, it } from "vitest";
import { attackedRun } from "../testing/attacks.ts";
import { linesVocabulary } from "../testing/lines.ts";
import { withStore } from "../testing/with-store.ts";
import { alieZ, Collusion, inverseNormal } from "../worker/collusion.ts";
import { RECOMMENDED_AGGREGATION, RunConfigError, resolveRunConfig } from "./run-config.ts";

describe("colluding attackers", () => {
  it("forge updates closer to the honest mean than honest updates are (ALIE), or a small step back (IPM)", () => {
    let seed = 5;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32 - 0.5;
    };
    const honest = Array.from({ length: 4 }, () =>
      Float32Array.from({ length: 64 }, () => 1 + rand()),
    );
    const alie = new Collusion({ kind: "alie", z: 0.5 }, 4);
    let forged: Float32Array = new Float32Array(64);
    for (const h of honest) forged = alie.forge(h);
    const mean = honest[0]!.map((_, i) => honest.reduce((s, h) => s + h[i]!, 0) / 4);
    const dist = (a: Float32Array) => Math.hypot(...a.map((v, i) => v - mean[i]!));
    expect(dist(forged)).toBeLessThan(Math.min(...honest.map(dist)));
    // Every coordinate is pushed the same way.
    expect(forged.every((v, i) => v <= mean[i]! + 1e-6)).toBe(true);
    const ipm = new Collusion({ kind: "ipm", epsilon: 0.1 }, 4);
    for (const h of honest) forged = ipm.forge(h);
    for (let i = 0; i < 64; i++) expect(forged[i]).toBeCloseTo(-0.1 * mean[i]!, 5);
    expect(alie.forged + ipm.forged).toBe(8);
  });

  it("take ALIE's z from the voter and attacker counts", () => {
    expect(inverseNormal(0.5)).toBeCloseTo(0, 9);
    expect(inverseNormal(0.975)).toBeCloseTo(1.959964, 5);
    expect(inverseNormal(0.001)).toBeCloseTo(-3.090232, 5);
    // n = 20, f = 4: s = 7, z = Φ⁻¹(13/20).
    expect(alieZ(20, 4)).toBeCloseTo(0.38532, 4);
    expect(() => inverseNormal(1)).toThrow(/p must be/);
  });
});

// Every rule the create-run form offers, under both attacks at 10% and 20% of the sessions, on
// MNIST (10 sessions, 40 versions of every session's update; the README's table is the longer
// `pnpm bench:attacks`). Each cell checks that the attack was real: every forged update passed
// validation, so the aggregation alone stood between it and the model. The recommended rule
// must also stay within 2 points of its clean accuracy in every cell.
describe("robust rules under attack on MNIST", () => {
  const short = { workers: 10, versions: 40 } as const;
  const rules = {
    mean: { kind: "mean" },
    "trimmed mean": { kind: "trimmedMean", trim: 0.2 },
    median: { kind: "median" },
    "CenteredClip + buckets of 2 (recommended)": RECOMMENDED_AGGREGATION,
  } as const;
  let clean: number | undefined;
  const cleanAccuracy = (store: Parameters<typeof attackedRun>[0]) => {
    clean ??= attackedRun(store, {
      ...short,
      aggregation: RECOMMENDED_AGGREGATION,
      attack: "none",
      fraction: 0,
    }).accuracy;
    return clean;
  };
  const cells = Object.keys(rules).flatMap((rule) =>
    (["alie", "ipm"] as const).flatMap((attack) =>
      [0.1, 0.2].map((fraction) => [rule, attack, fraction] as const),
    ),
  );
  it.each(cells)(
    "%s, %s at %d",
    (rule, attack, fraction) =>
      withStore((store) => {
        const recommended = rules[rule as keyof typeof rules] === RECOMMENDED_AGGREGATION;
        const baseline = recommended ? cleanAccuracy(store) : undefined;
        const r = attackedRun(store, {
          ...short,
          aggregation: rules[rule as keyof typeof rules],
          attack,
          fraction,
        });
        console.log(`${rule}, ${attack} at ${fraction}: ${(100 * r.accuracy).toFixed(1)}%`);
        expect(r.attackers).toBe(Math.round(fraction * short.workers));
        expect(r.forged).toBeGreaterThanOrEqual(r.attackers * short.versions);
        expect(r.run.record.counters.updatesAccepted).toBe(short.workers * short.versions);
        if (baseline !== undefined) {
          expect(baseline).toBeGreaterThan(0.85);
          expect(r.accuracy).toBeGreaterThanOrEqual(baseline - 0.02);
        }
      }),
    600_000,
  );
});

describe("the recommended rule under attack on a GPT", () => {
  it(
    "keeps the tiny GPT's validation loss within 2% of its clean run under 20% ALIE and IPM",
    () =>
      withStore((store) => {
        const settings = {
          workers: 10,
          versions: 60,
          task: "lines",
          aggregation: RECOMMENDED_AGGREGATION,
        } as const;
        const clean = attackedRun(store, { ...settings, attack: "none", fraction: 0 });
        expect(clean.loss).toBeLessThan(Math.log(linesVocabulary) - 0.3);
        for (const attack of ["alie", "ipm"] as const) {
          const r = attackedRun(store, { ...settings, attack, fraction: 0.2 });
          console.log(
            `tiny GPT, ${attack} at 0.2: ${r.loss.toFixed(4)} (clean ${clean.loss.toFixed(4)})`,
          );
          expect(r.forged).toBeGreaterThanOrEqual(2 * settings.versions);
          expect(r.run.record.counters.updatesAccepted).toBe(settings.workers * settings.versions);
          expect(r.loss).toBeLessThanOrEqual(clean.loss * 1.02);
        }
      }),
    600_000,
  );
});

describe("the aggregation settings", () => {
  it("refuses buckets under a plain mean and settings out of range, one sentence each", () => {
    let problems: string[] = [];
    try {
      resolveRunConfig({ aggregation: { kind: "mean", bucket: 2, radius: -1, iterations: 0 } });
    } catch (e) {
      expect(e).toBeInstanceOf(RunConfigError);
      problems = (e as RunConfigError).problems;
    }
    expect(problems).toEqual([
      "aggregation.bucket: buckets feed a robust rule (trimmedMean, median or centeredClip), not the mean",
      "aggregation.radius: 0 (the median distance) or a positive radius",
      "aggregation.iterations: an integer from 1 to 100",
    ]);
    expect(resolveRunConfig({ aggregation: RECOMMENDED_AGGREGATION }).aggregation).toMatchObject({
      kind: "centeredClip",
      bucket: 2,
      radius: 0,
      iterations: 3,
    });
  });
});
