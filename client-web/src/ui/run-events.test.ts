import { describe, expect, it } from "vitest";
import { type MetricPoint, mergePoints } from "./run-events.ts";

const commit = (version: number): MetricPoint => ({
  version,
  epoch: 0,
  at: version,
  trainLoss: 4 - version / 10,
  samplesPerSecond: 10,
  workers: 2,
});

describe("the run page's metric points", () => {
  it("folds a late evaluation into its version's point, keeping version order", () => {
    const sent = [commit(1), commit(2), commit(3), commit(4)];
    const evaluation = { ...commit(2), trainLoss: 9, testLoss: 2.5, testAccuracy: 0.3 };
    const merged = mergePoints(sent, [evaluation, commit(5)]);
    expect(merged.map((p) => p.version)).toEqual([1, 2, 3, 4, 5]);
    // The commit's own figures stay; the evaluation adds its test loss and accuracy.
    expect(merged[1]).toEqual({ ...commit(2), testLoss: 2.5, testAccuracy: 0.3 });
    // An evaluation with no commit point of its own (version 0) stands alone, in order.
    expect(mergePoints(merged, [{ ...commit(0), testLoss: 4.2 }])[0]!.version).toBe(0);
    // A repeated commit point changes nothing.
    expect(mergePoints(merged, [commit(3)])).toEqual(merged);
  });
});
