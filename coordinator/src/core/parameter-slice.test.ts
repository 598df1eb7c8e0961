// A run split into slices steps to the same parameters, bit for bit, as the run stepped whole:
// what lets a run's parameters live in several places (the edge's shard objects) at all.
import {
  type AggregateOptions,
  decayMask,
  gptSpec,
  initParameters,
  parameterLayout,
  seededRandom,
  type WeightedUpdate,
} from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { coordinatewise, ParameterSlice, parameterRanges, sliceMask } from "./parameter-slice.ts";
import type { ServerOptimizerConfig } from "./run-config.ts";
import { initialOptimizerState } from "./server-optimizer.ts";

const spec = gptSpec({ vocabSize: 11, contextLength: 8, layers: 1, heads: 2, width: 8 });
const layout = parameterLayout(spec);
const mask = decayMask(layout);

const optimizers: Record<string, ServerOptimizerConfig> = {
  adamw: {
    kind: "adamw",
    learningRate: 3e-3,
    momentum: 0.9,
    nesterov: false,
    beta2: 0.95,
    epsilon: 1e-8,
    weightDecay: 0.1,
    warmupVersions: 2,
    decayVersions: 5,
    minLearningRate: 1e-4,
  },
  nesterov: {
    kind: "sgd",
    learningRate: 0.7,
    momentum: 0.9,
    nesterov: true,
    beta2: 0,
    epsilon: 0,
    weightDecay: 0.01,
    warmupVersions: 0,
    decayVersions: 0,
    minLearningRate: 0,
  },
};

const rules: Record<string, AggregateOptions> = {
  mean: { kind: "mean" },
  trimmedMean: { kind: "trimmedMean", trim: 0.2 },
  median: { kind: "median" },
  "trimmedMean in buckets": { kind: "trimmedMean", trim: 0.2, bucket: 2 },
};

/** Version v's votes, whole: one tensor per slot, of uneven weights (one a wild outlier). */
function votes(v: number, count: number): Float32Array[][] {
  const random = seededRandom(1000 + v);
  return Array.from({ length: count }, (_, u) =>
    layout.slots.map((s) =>
      Float32Array.from({ length: s.size }, () => (random() - 0.5) * (u === 0 ? 40 : 0.02)),
    ),
  );
}

const weighted = (tensors: Float32Array[][]): WeightedUpdate[] =>
  tensors.map((t, u) => ({ key: `k${String(u).padStart(3, "0")}`, tensors: t, weight: 1 + u }));

/** The slice [start, end) of a whole vote, as the one array a shard keeps of it. */
function cut(whole: Float32Array[], start: number, end: number): Float32Array {
  const flat = new Float32Array(layout.size);
  for (const [i, s] of layout.slots.entries()) flat.set(whole[i]!, s.offset);
  return flat.slice(start, end);
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe("a run stepped in slices", () => {
  for (const [optimizerName, config] of Object.entries(optimizers))
    for (const [ruleName, rule] of Object.entries(rules))
      it(`gets the whole run's bits: ${ruleName}, ${optimizerName}`, () => {
        expect(coordinatewise(rule)).toBe(true);
        const initial = initParameters(spec, 7);
        const whole = new ParameterSlice(
          initial.slice(),
          initialOptimizerState(config, layout.size),
          mask,
        );
        // Edges inside tensors, one slice of a single parameter, none aligned to 32 bits.
        const ranges = [
          { start: 0, end: 37 },
          { start: 37, end: 38 },
          { start: 38, end: 301 },
          { start: 301, end: layout.size },
        ];
        const slices = ranges.map(
          (r) =>
            new ParameterSlice(
              initial.slice(r.start, r.end),
              initialOptimizerState(config, r.end - r.start),
              sliceMask(mask, r),
            ),
        );
        for (let v = 0; v < 4; v++) {
          const options = { ...rule, seed: 99 + v };
          const all = votes(v, 5);
          expect(whole.step(weighted(all), options, config)).toBe(true);
          for (const [i, r] of ranges.entries()) {
            const mine = weighted(all.map((t) => [cut(t, r.start, r.end)]));
            expect(slices[i]!.step(mine, options, config)).toBe(true);
          }
        }
        expect(whole.optimizer.step).toBe(4);
        for (const [i, r] of ranges.entries()) {
          const s = slices[i]!;
          expect(s.optimizer.step).toBe(4);
          expect(bits(s.params)).toEqual(bits(whole.params.subarray(r.start, r.end)));
          expect(bits(s.optimizer.m)).toEqual(bits(whole.optimizer.m.subarray(r.start, r.end)));
          expect(bits(s.optimizer.v)).toEqual(bits(whole.optimizer.v.subarray(r.start, r.end)));
        }
        // And the step moved them: the comparison is not of two untouched copies.
        expect(bits(whole.params)).not.toEqual(bits(initial));
      });

  it("keeps its parameters and state when a step is not finite", () => {
    const config = { ...optimizers.nesterov!, learningRate: 3e38 };
    const initial = initParameters(spec, 7);
    const slice = new ParameterSlice(
      initial.slice(),
      initialOptimizerState(config, layout.size),
      mask,
    );
    expect(slice.step(weighted(votes(0, 3)), { kind: "mean" }, config)).toBe(false);
    expect(bits(slice.params)).toEqual(bits(initial));
    expect(slice.optimizer.step).toBe(0);
    expect(slice.optimizer.m.every((x) => x === 0)).toBe(true);
  });

  it("refuses votes that do not tile it", () => {
    const config = optimizers.adamw!;
    const slice = new ParameterSlice(
      new Float32Array(10),
      initialOptimizerState(config, 10),
      new Uint32Array(1),
    );
    expect(() =>
      slice.step(
        [{ key: "a", tensors: [new Float32Array(9)], weight: 1 }],
        { kind: "mean" },
        config,
      ),
    ).toThrow(/9 values for a slice of 10/);
  });
});

describe("parameterRanges and sliceMask", () => {
  it("tile the vector in order, and carry each parameter's decay bit", () => {
    for (const count of [1, 2, 3, 7]) {
      const ranges = parameterRanges(layout.size, count);
      expect(ranges).toHaveLength(count);
      expect(ranges[0]!.start).toBe(0);
      expect(ranges.at(-1)!.end).toBe(layout.size);
      for (let i = 1; i < count; i++) expect(ranges[i]!.start).toBe(ranges[i - 1]!.end);
      const sizes = ranges.map((r) => r.end - r.start);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      for (const r of ranges) {
        const m = sliceMask(mask, r);
        for (let i = r.start; i < r.end; i++)
          expect((m[(i - r.start) >>> 5]! >>> ((i - r.start) & 31)) & 1).toBe(
            (mask[i >>> 5]! >>> (i & 31)) & 1,
          );
      }
    }
    expect(() => parameterRanges(10, 0)).toThrow();
  });

  it("say which rules a slice cannot apply alone", () => {
    expect(coordinatewise({ kind: "centeredClip" })).toBe(false);
    expect(coordinatewise({ kind: "mean", clipNorm: 1 })).toBe(false);
    expect(coordinatewise({ kind: "median", clipNorm: 0 })).toBe(true);
  });
});
