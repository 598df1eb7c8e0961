import { describe, expect, it } from "vitest";
import { resolveRunConfig } from "./run-config.ts";
import { applyUpdate, initialOptimizerState, learningRateAt } from "./server-optimizer.ts";

/** Every parameter decayed. */
const ALL = Uint32Array.of(0xffffffff);

const sgd = (over = {}) => ({ ...resolveRunConfig({}).optimizer, kind: "sgd" as const, ...over });

describe("the server optimizer", () => {
  it("takes heavy-ball momentum steps", () => {
    const config = sgd({ learningRate: 0.1, momentum: 0.5, nesterov: false });
    const p = Float32Array.from([1]);
    const s = initialOptimizerState(config, 1);
    applyUpdate(config, p, s, Float32Array.from([2]), ALL); // v = 2, p = 1 - 0.2
    expect(p[0]).toBeCloseTo(0.8, 6);
    applyUpdate(config, p, s, Float32Array.from([2]), ALL); // v = 1 + 2 = 3, p = 0.8 - 0.3
    expect(p[0]).toBeCloseTo(0.5, 6);
  });

  it("takes Nesterov steps (the outer optimizer of local SGD)", () => {
    const config = sgd({ learningRate: 0.1, momentum: 0.5, nesterov: true });
    const p = Float32Array.from([1]);
    const s = initialOptimizerState(config, 1);
    applyUpdate(config, p, s, Float32Array.from([2]), ALL); // v = 2, step = g + μv = 3
    expect(p[0]).toBeCloseTo(0.7, 6);
  });

  it("takes AdamW steps with bias correction", () => {
    const config = { ...resolveRunConfig({}).optimizer, learningRate: 0.01, weightDecay: 0.1 };
    const p = Float32Array.from([1, -1]);
    const s = initialOptimizerState(config, 2);
    // The first parameter is decayed, the second (a bias, a norm, an embedding) is not.
    applyUpdate(config, p, s, Float32Array.from([0.5, -2]), Uint32Array.of(0b01));
    // The first bias-corrected step is ±lr whatever the gradient's size, plus decoupled decay.
    expect(p[0]).toBeCloseTo(1 - 0.01 * (1 + 0.1), 5);
    expect(p[1]).toBeCloseTo(-1 + 0.01, 5);
    expect(s.step).toBe(1);
  });

  it("writes into spare arrays, in place, or in both the same numbers; says when a step is not finite", () => {
    const config = { ...resolveRunConfig({}).optimizer, learningRate: 0.01 };
    const p = Float32Array.from([1, -1, 0.5]);
    const g = Float32Array.from([0.5, -2, 3]);
    const inPlace = p.slice();
    const s1 = initialOptimizerState(config, 3);
    expect(applyUpdate(config, inPlace, s1, g, ALL)).toBe(true);
    const s2 = initialOptimizerState(config, 3);
    const into = { params: new Float32Array(3), m: new Float32Array(3), v: new Float32Array(3) };
    expect(applyUpdate(config, p, s2, g, ALL, into)).toBe(true);
    expect([...into.params]).toEqual([...inPlace]);
    expect([...into.m]).toEqual([...s1.m]);
    expect([...into.v]).toEqual([...s1.v]);
    expect([...p]).toEqual([1, -1, 0.5]); // the source is only read
    expect([...s2.m]).toEqual([0, 0, 0]);
    // A step past float32's range (sgd, a huge gradient) is reported, its source untouched.
    const big = sgd({ learningRate: 100, momentum: 0 });
    const s3 = initialOptimizerState(big, 1);
    const out = { params: new Float32Array(1), m: new Float32Array(1), v: new Float32Array(0) };
    expect(applyUpdate(big, Float32Array.from([1]), s3, Float32Array.from([1e37]), ALL, out)).toBe(
      false,
    );
    expect(applyUpdate(big, Float32Array.from([1]), s3, Float32Array.from([Number.NaN]), ALL)).toBe(
      false,
    );
  });

  it("warms up linearly, then decays on a cosine", () => {
    const config = sgd({
      learningRate: 1,
      warmupVersions: 4,
      decayVersions: 10,
      minLearningRate: 0.1,
    });
    expect(learningRateAt(config, 0)).toBeCloseTo(0.25);
    expect(learningRateAt(config, 3)).toBeCloseTo(1);
    expect(learningRateAt(config, 4)).toBeCloseTo(1);
    expect(learningRateAt(config, 9)).toBeCloseTo(0.55);
    expect(learningRateAt(config, 14)).toBeCloseTo(0.1);
    expect(learningRateAt(config, 100)).toBeCloseTo(0.1);
  });
});
