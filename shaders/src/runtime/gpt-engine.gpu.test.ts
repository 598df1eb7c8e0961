// The engine's GPT against the float64 reference GPT (src/reference/gpt.ts, checked against
// finite differences): the same loss and gradient at every parameter, with dropout drawing the
// same masks from the same seed, at a shape whose context spans two attention blocks.
import {
  gptSpec,
  initParameters,
  parameterLayout,
  seededRandom,
  shakespeareGpt,
} from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { expectClose } from "../kernels/testing.ts";
import { gptLossAndGradient } from "../reference/gpt.ts";
import { TrainingEngine } from "./engine.ts";

function tokens(n: number, V: number, seed: number): Int32Array {
  const next = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(next() * V));
}

describe("the engine's GPT", () => {
  it.each([
    [
      "ragged: T=70 over two attention blocks, 3 heads of 8, dropout 0.1",
      gptSpec({ vocabSize: 11, contextLength: 70, layers: 2, heads: 3, width: 24, dropout: 0.1 }),
      2,
    ],
    ["the Shakespeare GPT, 2 layers, 4 heads, width 64", shakespeareGpt, 3],
  ] as const)("computes the reference's loss and gradient: %s", async (_, spec, B) => {
    const t = spec.transformer!;
    const engine = await TrainingEngine.create(spec, { maxBatch: B });
    // Larger than GPT-2's init, so every path carries a gradient well above fp32 noise.
    const params = initParameters(spec).map((v, i) => v * 5 + ((i % 13) - 6) * 1e-3);
    engine.setParameters(params);
    const n = B * t.contextLength;
    const inputs = tokens(n, t.vocabSize, 1);
    const targets = tokens(n, t.vocabSize, 2);
    const gpu = await engine.gradient(inputs, targets, "fp32", { dropoutSeed: 77 });
    const cpu = gptLossAndGradient(spec, params, inputs, targets, B, t.contextLength, {
      dropoutSeed: 77,
    });
    expect(Math.abs(gpu.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-4);
    const layout = parameterLayout(spec);
    for (const [i, slot] of layout.slots.entries()) {
      const expected = cpu.grad.subarray(slot.offset, slot.offset + slot.size);
      try {
        expectClose(gpu.tensors[i]!.data as Float32Array, expected, 2e-3);
      } catch (error) {
        throw new Error(`${slot.name}: ${error}`);
      }
    }
    // A second step with another seed draws other masks, as the reference does.
    if (t.dropout > 0) {
      const again = await engine.gradient(inputs, targets, "fp32", { dropoutSeed: 78 });
      const other = gptLossAndGradient(spec, params, inputs, targets, B, t.contextLength, {
        dropoutSeed: 78,
      });
      expect(Math.abs(again.loss - other.loss) / other.loss).toBeLessThan(1e-4);
      expect(again.loss).not.toBe(gpu.loss);
    }
    engine.destroy();
  });

  it("refuses tokens outside the vocabulary and ragged rows, with a clear error", async () => {
    const engine = await TrainingEngine.create(shakespeareGpt, { maxBatch: 2 });
    const ok = new Int32Array(64);
    await expect(engine.gradient(Int32Array.from(ok).fill(65), ok)).rejects.toThrow(/vocabulary/);
    await expect(engine.gradient(new Int32Array(63), new Int32Array(63))).rejects.toThrow(
      /rows of 64/,
    );
    await expect(engine.gradient(new Float32Array(64), ok)).rejects.toThrow(/Int32Array/);
    engine.destroy();
  });
});
