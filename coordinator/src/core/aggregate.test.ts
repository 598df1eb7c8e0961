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
    for (const kind of ["mean", "trimmedMean", "median"] as const) {
      const reference = aggregate(updates, { kind, trim: 0.2, clipNorm: 50 })[0]!;
      for (let trial = 0; trial < 20; trial++) {
        const shuffled = [...updates].sort(() => rand() - 0.5);
        const out = aggregate(shuffled, { kind, trim: 0.2, clipNorm: 50 })[0]!;
        expect(new Uint32Array(out.buffer)).toEqual(new Uint32Array(reference.buffer));
      }
    }
  });

  it("refuses updates of different shapes", () => {
    expect(() => aggregate([u("a", [1]), u("b", [1, 2])], { kind: "mean" })).toThrow(/shapes/);
  });
});
