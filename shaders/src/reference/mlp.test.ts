import {
  gatherBatch,
  initParameters,
  mlpSpec,
  parameterLayout,
  seededRandom,
  syntheticBlobs,
} from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { evaluate, lossAndGradient } from "./mlp.ts";
import {
  adamwStep,
  geluBackward,
  geluForward,
  gradNorm,
  sgdMomentumStep,
  softmaxCrossEntropy,
} from "./ops.ts";
import { randomArray, worstFiniteDifference } from "./testing.ts";

describe("the CPU reference", () => {
  it.each(["relu", "gelu"] as const)(
    "matches central finite differences on a small MLP with %s (float64)",
    (activation) => {
      const spec = mlpSpec([5, 7, 6, 3], { activation });
      const params = randomArray(parameterLayout(spec).size, 1, 0.8);
      const batch = 4;
      const inputs = randomArray(batch * 5, 2);
      const labels = new Int32Array([0, 2, 1, 2]);
      const { grad } = lossAndGradient(spec, params, inputs, labels, batch);
      const loss = () => lossAndGradient(spec, params, inputs, labels, batch).loss;
      expect(worstFiniteDifference(params, grad, loss, 1e-6, 1e-3)).toBeLessThan(1e-6);
    },
  );

  it("computes GELU's derivative consistently with GELU", () => {
    const x = randomArray(50, 3, 4);
    const ones = new Float64Array(50).fill(1);
    const d = geluBackward(x, ones);
    const h = 1e-6;
    for (let i = 0; i < x.length; i++) {
      const numeric =
        (geluForward([x[i]! + h] as unknown as Float64Array)[0]! -
          geluForward([x[i]! - h] as unknown as Float64Array)[0]!) /
        (2 * h);
      expect(d[i]).toBeCloseTo(numeric, 6);
    }
  });

  it("computes softmax cross-entropy by hand on a 2×3 case", () => {
    const { loss, correct, dlogits } = softmaxCrossEntropy(
      new Float64Array([1, 2, 3, 0, 0, 0]),
      new Int32Array([2, 0]),
      2,
      3,
    );
    const p = [Math.exp(1), Math.exp(2), Math.exp(3)].map(
      (e, _, a) => e / a.reduce((x, y) => x + y),
    );
    expect(loss).toBeCloseTo((-Math.log(p[2]!) + Math.log(3)) / 2, 12);
    expect(correct).toBe(2); // row 2's arg-max is its first class on a tie
    expect(dlogits[2]).toBeCloseTo((p[2]! - 1) / 2, 12);
  });

  it("steps SGD with momentum and AdamW by their formulas", () => {
    const p = new Float64Array([1, -2]);
    const v = new Float64Array([0.5, 0]);
    sgdMomentumStep(p, new Float64Array([0.1, 0.2]), v, {
      learningRate: 0.1,
      momentum: 0.9,
      weightDecay: 0.01,
    });
    expect([...v]).toEqual([0.9 * 0.5 + 0.1, 0.2]);
    expect(p[0]).toBeCloseTo(1 - 0.1 * (0.55 + 0.01), 12);
    const q = new Float64Array([1]);
    const m1 = new Float64Array(1);
    const m2 = new Float64Array(1);
    adamwStep(q, new Float64Array([0.5]), m1, m2, {
      learningRate: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0,
      step: 1,
    });
    expect(q[0]).toBeCloseTo(1 - 0.01, 6); // the first step moves by lr·sign(g)
    expect(gradNorm(new Float64Array([3, 4]))).toBe(5);
  });

  it("trains a small MLP on synthetic blobs to high accuracy", () => {
    const data = syntheticBlobs({ count: 512, width: 16, classes: 4, seed: 5 });
    const spec = mlpSpec([16, 32, 4], { seed: 2 });
    const params = initParameters(spec);
    const velocity = new Float32Array(params.length);
    const before = evaluate(spec, params, data);
    const next = seededRandom(9);
    for (let step = 0; step < 150; step++) {
      const indices = Array.from({ length: 32 }, () => Math.floor(next() * data.count));
      const batch = gatherBatch(data, indices);
      const { grad } = lossAndGradient(spec, params, batch.inputs, batch.labels, 32);
      sgdMomentumStep(params, grad, velocity, { learningRate: 0.1, momentum: 0.9, weightDecay: 0 });
    }
    const after = evaluate(spec, params, data);
    expect(after.loss).toBeLessThan(before.loss / 4);
    expect(after.accuracy).toBeGreaterThan(0.95);
  });
});
