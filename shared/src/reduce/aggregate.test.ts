import { describe, expect, it } from "vitest";
import { aggregate, clipFactor, updateNorm, type WeightedUpdate } from "./aggregate.ts";

const u = (key: string, values: number[], weight = 1): WeightedUpdate => ({
  key,
  weight,
  tensors: [Float32Array.from(values)],
});

describe("aggregation", () => {
  it("takes the weighted mean", () => {
    const [out] = aggregate([u("a", [1, 2], 1), u("b", [4, 8], 3)], { kind: "mean" });
    expect([...out!]).toEqual([(1 + 12) / 4, (2 + 24) / 4]);
  });

  it("trims the extremes of every coordinate before averaging", () => {
    const updates = [
      u("a", [1, -100]),
      u("b", [2, 5]),
      u("c", [3, 6]),
      u("d", [100, 7]),
      u("e", [4, 8]),
    ];
    // trim 0.2 of 5 = 1 from each end: coordinate 0 keeps 2,3,4; coordinate 1 keeps 5,6,7.
    const [out] = aggregate(updates, { kind: "trimmedMean", trim: 0.2 });
    expect([...out!]).toEqual([3, 6]);
    // 0.2 of 4 rounds up to 1 from each end: 2 and 3 remain.
    const [short] = aggregate(updates.slice(0, 4), { kind: "trimmedMean", trim: 0.2 });
    expect(short![0]).toBe(2.5);
    // Never trims everything: of two values, both stay.
    const [two] = aggregate(updates.slice(0, 2), { kind: "trimmedMean", trim: 0.45 });
    expect(two![0]).toBe(1.5);
  });

  it("takes the coordinate-wise median, the mean of the middle two for an even count", () => {
    const [odd] = aggregate([u("a", [1, 9]), u("b", [5, -3]), u("c", [100, 4])], {
      kind: "median",
    });
    expect([...odd!]).toEqual([5, 4]);
    const [even] = aggregate([u("a", [1]), u("b", [2]), u("c", [10]), u("d", [20])], {
      kind: "median",
    });
    expect([...even!]).toEqual([6]);
  });

  it("agrees with a plain sorted column for small and large update counts", () => {
    let seed = 3;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32 - 0.5;
    };
    for (const n of [1, 2, 7, 10, 48, 49, 80]) {
      const updates = Array.from({ length: n }, (_, k) =>
        u(
          `k${String(k).padStart(3, "0")}`,
          Array.from({ length: 5 }, () => Math.round(rand() * 8) + 0),
        ),
      );
      const cut = Math.min(Math.ceil(0.2 * n - 1e-9), Math.floor((n - 1) / 2));
      const [trimmed] = aggregate(updates, { kind: "trimmedMean", trim: 0.2 });
      const [median] = aggregate(updates, { kind: "median" });
      for (let i = 0; i < 5; i++) {
        const column = updates.map((x) => x.tensors[0]![i]!).sort((a, b) => a - b);
        const kept = column.slice(cut, n - cut);
        expect(trimmed![i]).toBeCloseTo(kept.reduce((a, b) => a + b, 0) / kept.length, 5);
        const mid = n % 2 ? column[(n - 1) / 2]! : (column[n / 2 - 1]! + column[n / 2]!) / 2;
        expect(median![i]).toBe(mid);
      }
    }
  });

  it("clips each update's norm before aggregating", () => {
    expect(updateNorm([Float32Array.from([3, 4])])).toBe(5);
    expect(clipFactor(5, 1)).toBeCloseTo(0.2);
    expect(clipFactor(5, 0)).toBe(1);
    const [out] = aggregate([u("a", [3, 4]), u("b", [0.3, 0.4])], { kind: "mean", clipNorm: 1 });
    expect(out![0]).toBeCloseTo((0.6 + 0.3) / 2, 6);
    expect(out![1]).toBeCloseTo((0.8 + 0.4) / 2, 6);
  });

  it("gives identical bits for the same updates in any arrival order", () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const updates = Array.from({ length: 9 }, (_, i) =>
      u(
        `k${i}`,
        Array.from({ length: 257 }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 8 - 4)),
        1 + (i % 3),
      ),
    );
    const rules = [
      { kind: "mean" },
      { kind: "trimmedMean", trim: 0.2 },
      { kind: "median" },
      { kind: "centeredClip" },
      { kind: "centeredClip", radius: 3, iterations: 5 },
      { kind: "median", bucket: 2, seed: 11 },
      { kind: "centeredClip", bucket: 3, seed: 11 },
    ] as const;
    for (const rule of rules) {
      const reference = aggregate(updates, { ...rule, clipNorm: 50 })[0]!;
      for (let trial = 0; trial < 20; trial++) {
        const shuffled = [...updates].sort(() => rand() - 0.5);
        const out = aggregate(shuffled, { ...rule, clipNorm: 50 })[0]!;
        expect(new Uint32Array(out.buffer)).toEqual(new Uint32Array(reference.buffer));
      }
    }
  });

  it("centered-clips: the mean when every update is within the radius", () => {
    const updates = [u("a", [1, 0]), u("b", [2, 4]), u("c", [9, -1]), u("d", [0, 1])];
    // From the median (1.5, 0.5), one unclipped step lands on the mean of the four.
    const [out] = aggregate(updates, { kind: "centeredClip", radius: 1e9, iterations: 1 });
    expect(out![0]).toBeCloseTo(3, 6);
    expect(out![1]).toBeCloseTo(1, 6);
  });

  it("centered-clips: a far update moves the centre by at most radius/n per iteration", () => {
    const honest = [u("a", [1, 1]), u("b", [1.2, 0.8]), u("c", [0.8, 1.2]), u("d", [1, 1])];
    const attacker = u("e", [1e6, -1e6]);
    const radius = 0.5;
    const iterations = 4;
    const [out] = aggregate([...honest, attacker], { kind: "centeredClip", radius, iterations });
    const shift = Math.hypot(out![0]! - 1, out![1]! - 1);
    expect(shift).toBeLessThanOrEqual((iterations * radius) / 5 + 1e-6);
    expect(shift).toBeGreaterThan(0);
    // The mean is dragged by 2·10⁵ per coordinate.
    const [mean] = aggregate([...honest, attacker], { kind: "mean" });
    expect(mean![0]).toBeGreaterThan(1e5);
    // Without a radius it takes the median distance: the attacker is clipped to it.
    const [auto] = aggregate([...honest, attacker], { kind: "centeredClip" });
    expect(Math.hypot(auto![0]! - 1, auto![1]! - 1)).toBeLessThan(0.2);
  });

  it("averages seeded buckets before the robust rule", () => {
    const updates = [u("a", [0]), u("b", [1]), u("c", [2]), u("d", [3]), u("e", [4]), u("f", [50])];
    // One bucket holding every update is their mean, whatever the rule.
    const [whole] = aggregate(updates, { kind: "median", bucket: 6, seed: 1 });
    expect(whole![0]).toBeCloseTo(60 / 6, 5);
    // Buckets of two: the median of three pair means; each seed gives its own pairs, and the
    // pairs are the shuffle's (the result is a pair mean's value or their median).
    const results = new Set<number>();
    for (let seed = 0; seed < 40; seed++) {
      const [out] = aggregate(updates, { kind: "median", bucket: 2, seed });
      const again = aggregate([...updates].reverse(), { kind: "median", bucket: 2, seed })[0]!;
      expect(again[0]).toBe(out![0]);
      results.add(out![0]!);
    }
    expect(results.size).toBeGreaterThan(2);
    for (const r of results) expect(Number.isInteger(r * 2)).toBe(true);
  });

  it("refuses updates of different shapes", () => {
    expect(() => aggregate([u("a", [1]), u("b", [1, 2])], { kind: "mean" })).toThrow(/shapes/);
  });
});
