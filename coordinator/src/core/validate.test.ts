import { type GradientUpdate, mlpSpec, parameterLayout } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { resolveRunConfig } from "./run-config.ts";
import type { Lease } from "./scheduler.ts";
import { checkUpdate, type UpdateContext } from "./validate.ts";

const model = mlpSpec([3, 4, 2]);
const layout = parameterLayout(model);
const lease: Lease = {
  id: 7,
  sessionId: "s",
  epoch: 0,
  batch: 0,
  baseVersion: 5,
  issuedAt: 0,
  deadline: 1000,
  replica: 0,
};
const sync = resolveRunConfig({ model, dataset: "blobs" }).strategy;
const context = (over: Partial<UpdateContext> = {}): UpdateContext => ({
  sessionId: "s",
  lease,
  now: 10,
  version: 5,
  strategy: sync,
  layout,
  maxNorm: 100,
  samples: 8,
  innerSteps: 1,
  ...over,
});
const update = (over: Partial<GradientUpdate> = {}, fill = 0.1): GradientUpdate => ({
  gradientId: "g",
  gradients: layout.slots.map((s) => ({
    shape: s.shape,
    dtype: "float32",
    name: s.name,
    data: new Float32Array(s.size).fill(fill),
  })),
  loss: 1,
  timestamp: 0,
  nodeId: "s",
  batchId: "0:0",
  leaseId: 7,
  baseVersion: 5,
  sampleCount: 8,
  encoding: "fp32",
  kind: "gradient",
  ...over,
});
const code = (u: GradientUpdate, c = context()) => {
  const r = checkUpdate(u, c);
  return r.ok ? "ok" : r.code;
};

describe("update validation", () => {
  it("refuses an update whose claims are not what its lease handed out", () => {
    expect(code(update({ sampleCount: 1e9 }))).toBe("claimMismatch");
    expect(code(update({ sampleCount: -5 }))).toBe("claimMismatch");
    expect(code(update({ sampleCount: 7 }))).toBe("claimMismatch");
    expect(code(update({ innerSteps: 8 }))).toBe("claimMismatch");
    expect(code(update({ innerSteps: 1 }))).toBe("ok");
    expect(code(update({ loss: Number.NaN }))).toBe("nonFinite");
  });

  it("accepts a well-formed update on a live lease and reports its norm", () => {
    const r = checkUpdate(update(), context());
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.norm).toBeCloseTo(0.1 * Math.sqrt(layout.size), 5);
  });

  it("refuses a lease that is not this session's, or not live", () => {
    expect(code(update(), context({ lease: undefined }))).toBe("unknownLease");
    expect(code(update(), context({ sessionId: "other" }))).toBe("unknownLease");
  });

  it("refuses an expired lease", () => {
    expect(code(update(), context({ now: 1000 }))).toBe("leaseExpired");
  });

  it("refuses versions the strategy does not accept", () => {
    expect(code(update(), context({ version: 6 }))).toBe("staleVersion");
    expect(code(update({ baseVersion: 6 }))).toBe("staleVersion");
    const async = resolveRunConfig({
      model,
      dataset: "blobs",
      strategy: { kind: "asynchronous", maxStaleness: 2 },
    }).strategy;
    expect(code(update(), context({ version: 7, strategy: async }))).toBe("ok");
    expect(code(update(), context({ version: 8, strategy: async }))).toBe("staleVersion");
  });

  it("refuses the wrong kind of update for the strategy", () => {
    expect(code(update({ kind: "parameterDelta" }))).toBe("unsupportedMessage");
    const local = resolveRunConfig({
      model,
      dataset: "blobs",
      strategy: { kind: "localSgd" },
    }).strategy;
    expect(code(update(), context({ strategy: local }))).toBe("unsupportedMessage");
    expect(code(update({ kind: "parameterDelta" }), context({ strategy: local }))).toBe("ok");
  });

  it("refuses wrong shapes: tensor count, dimensions, names, element counts", () => {
    const u = update();
    expect(code({ ...u, gradients: u.gradients.slice(1) })).toBe("shapeMismatch");
    expect(
      code({ ...u, gradients: [{ ...u.gradients[0]!, shape: [4, 3] }, ...u.gradients.slice(1)] }),
    ).toBe("shapeMismatch");
    expect(
      code({
        ...u,
        gradients: [{ ...u.gradients[0]!, name: "dense1.weight" }, ...u.gradients.slice(1)],
      }),
    ).toBe("shapeMismatch");
    expect(
      code({
        ...u,
        gradients: [{ ...u.gradients[0]!, data: new Float32Array(5) }, ...u.gradients.slice(1)],
      }),
    ).toBe("shapeMismatch");
    expect(
      code({
        ...u,
        gradients: [{ ...u.gradients[0]!, data: new Int32Array(12) }, ...u.gradients.slice(1)],
      }),
    ).toBe("shapeMismatch");
  });

  it("refuses NaN and infinite values", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const u = update();
      (u.gradients[2]!.data as Float32Array)[1] = bad;
      expect(code(u)).toBe("nonFinite");
    }
  });

  it("refuses an update whose norm is over the run's bound", () => {
    expect(code(update({}, 100))).toBe("normTooLarge");
  });
});
