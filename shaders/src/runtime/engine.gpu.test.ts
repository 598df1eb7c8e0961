import {
  decodeMessage,
  encodeMessage,
  gatherBatch,
  initParameters,
  mlpSpec,
  mnistMlp,
  parameterLayout,
  seededRandom,
} from "@pangea/shared";
import { loadMnist } from "@pangea/shared/mnist";
import { afterAll, describe, expect, it } from "vitest";
import { lossAndGradient } from "../reference/mlp.ts";
import { sgdMomentumStep } from "../reference/ops.ts";
import { DeviceLostError, TrainingEngine } from "./engine.ts";

const engines: TrainingEngine[] = [];
afterAll(() => {
  for (const e of engines) e.destroy();
});
async function engineFor(spec: Parameters<typeof TrainingEngine.create>[0], maxBatch = 256) {
  const engine = await TrainingEngine.create(spec, { maxBatch });
  engines.push(engine);
  return engine;
}

function normwiseError(gpu: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(gpu[i]!)) return Number.POSITIVE_INFINITY;
    diff = Math.max(diff, Math.abs(gpu[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

const mnistBatch = (size: number, seed: number) => {
  const { train } = loadMnist();
  const next = seededRandom(seed);
  return gatherBatch(
    train,
    Array.from({ length: size }, () => Math.floor(next() * train.count)),
  );
};

describe("the training engine", () => {
  it("reports its adapter, and whether it is a software fallback", async () => {
    const engine = await engineFor(mnistMlp);
    expect(engine.adapter.description.length).toBeGreaterThan(0);
    expect(typeof engine.adapter.softwareFallback).toBe("boolean");
    expect(engine.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it("computes the full-size MNIST MLP's gradient as the CPU reference's backward pass does", async () => {
    const engine = await engineFor(mnistMlp);
    const params = initParameters(mnistMlp, 11);
    engine.setParameters(params);
    for (const size of [64, 100]) {
      const batch = mnistBatch(size, size);
      const gpu = await engine.gradient(batch.inputs, batch.labels);
      const cpu = lossAndGradient(mnistMlp, params, batch.inputs, batch.labels, size);
      expect(Math.abs(gpu.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-4);
      expect(gpu.correct).toBe(cpu.correct);
      let norm = 0;
      for (const g of cpu.grad) norm += g * g;
      expect(Math.abs(gpu.gradNorm - Math.sqrt(norm)) / Math.sqrt(norm)).toBeLessThan(1e-4);
      for (const [i, slot] of parameterLayout(mnistMlp).slots.entries()) {
        expect(gpu.tensors[i]!.name).toBe(slot.name);
        expect(
          normwiseError(
            gpu.tensors[i]!.data,
            cpu.grad.subarray(slot.offset, slot.offset + slot.size),
          ),
        ).toBeLessThan(1e-4);
      }
    }
  });

  it.each(["relu", "gelu"] as const)(
    "matches central finite differences of the float64 reference on a small MLP with %s",
    async (activation) => {
      const spec = mlpSpec([6, 5, 4, 3], { activation, seed: 3 });
      const engine = await engineFor(spec, 8);
      const next = seededRandom(4);
      const params = Float32Array.from(
        { length: parameterLayout(spec).size },
        () => (next() * 2 - 1) * 0.9,
      );
      const inputs = Float32Array.from({ length: 5 * 6 }, () => next() * 2 - 1);
      const labels = new Int32Array([0, 1, 2, 1, 0]);
      engine.setParameters(params);
      const gpu = await engine.gradient(inputs, labels);
      const flat = new Float32Array(params.length);
      for (const [i, slot] of parameterLayout(spec).slots.entries())
        flat.set(gpu.tensors[i]!.data as Float32Array, slot.offset);
      const p64 = Float64Array.from(params);
      const numeric = new Float64Array(params.length);
      const h = 1e-6;
      for (let i = 0; i < p64.length; i++) {
        const saved = p64[i]!;
        p64[i] = saved + h;
        const up = lossAndGradient(spec, p64, inputs, labels, 5).loss;
        p64[i] = saved - h;
        const down = lossAndGradient(spec, p64, inputs, labels, 5).loss;
        p64[i] = saved;
        numeric[i] = (up - down) / (2 * h);
      }
      expect(normwiseError(flat, numeric)).toBeLessThan(1e-4);
    },
  );

  it("packs the update as fp16 and int8 for the wire, and the codec carries it", async () => {
    const engine = await engineFor(mnistMlp);
    engine.setParameters(initParameters(mnistMlp, 12));
    const batch = mnistBatch(64, 5);
    const fp32 = await engine.gradient(batch.inputs, batch.labels, "fp32");
    for (const encoding of ["fp16", "int8"] as const) {
      const packed = await engine.gradient(batch.inputs, batch.labels, encoding);
      const frame = encodeMessage({
        messageId: "u",
        sender: "s",
        recipient: "coordinator",
        timestamp: 1,
        payload: {
          type: "gradientUpdate",
          gradientId: "g",
          gradients: packed.tensors,
          loss: packed.loss,
          timestamp: 1,
          nodeId: "s",
          batchId: "b",
          leaseId: 1,
          baseVersion: 0,
          sampleCount: 64,
          encoding,
          kind: "gradient",
        },
      });
      const decoded = decodeMessage(frame);
      if (!decoded.ok || decoded.message.payload.type !== "gradientUpdate")
        throw new Error("decode failed");
      const bound = encoding === "fp16" ? 1e-3 : 1 / 127;
      for (const [i, t] of decoded.message.payload.gradients.entries()) {
        expect(t.wire).toBe(encoding === "fp16" ? "float16" : "int8");
        expect(normwiseError(t.data, fp32.tensors[i]!.data)).toBeLessThan(bound);
      }
    }
  });

  it("takes a local SGD-with-momentum step as the reference does", async () => {
    const spec = mlpSpec([20, 16, 4], { seed: 9 });
    const engine = await engineFor(spec, 32);
    const params = initParameters(spec);
    engine.setParameters(params);
    engine.resetOptimizer();
    const next = seededRandom(8);
    const inputs = Float32Array.from({ length: 32 * 20 }, () => next());
    const labels = Int32Array.from({ length: 32 }, (_, i) => i % 4);
    const h = { learningRate: 0.1, momentum: 0.9, weightDecay: 0.001 };
    const expected = Float64Array.from(params);
    const velocity = new Float64Array(params.length);
    for (let step = 0; step < 3; step++) {
      await engine.train(inputs, labels, { kind: "sgd", ...h });
      const { grad } = lossAndGradient(spec, expected, inputs, labels, 32);
      sgdMomentumStep(expected, grad, velocity, h);
    }
    expect(normwiseError(await engine.parameters(), expected)).toBeLessThan(1e-4);
  });

  it("says clearly when the device is lost, and can start again", async () => {
    const engine = await engineFor(mlpSpec([4, 3]), 4);
    engine.device.destroy();
    const info = await engine.lost;
    expect(info.reason).toBe("destroyed");
    await expect(engine.gradient(new Float32Array(8), new Int32Array(2))).rejects.toThrow(
      DeviceLostError,
    );
    const again = await engineFor(mlpSpec([4, 3]), 4);
    again.setParameters(initParameters(mlpSpec([4, 3])));
    const stats = await again.gradient(new Float32Array(8).fill(0.5), new Int32Array([0, 2]));
    expect(Number.isFinite(stats.loss)).toBe(true);
  });

  it("refuses batches and parameters of the wrong size", async () => {
    const engine = await engineFor(mlpSpec([4, 3]), 4);
    expect(() => engine.setParameters(new Float32Array(3))).toThrow(/expected 15 parameters/);
    await expect(engine.gradient(new Float32Array(7), new Int32Array(2))).rejects.toThrow(
      /inputs hold 7 values/,
    );
    await expect(engine.gradient(new Float32Array(40), new Int32Array(10))).rejects.toThrow(
      /outside 1..4/,
    );
  });
});
