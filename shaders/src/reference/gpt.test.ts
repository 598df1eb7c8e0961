import {
  decayMask,
  gptSpec,
  initParameters,
  parameterLayout,
  seededRandom,
  shakespeareGpt,
} from "@pangea/shared";
import { loadTinyShakespeare } from "@pangea/shared/text-node";
import { decodeText, encodeText, textBatch } from "@pangea/shared/text-shard";
import { describe, expect, it } from "vitest";
import { generate, gptLogits, gptLossAndGradient } from "./gpt.ts";
import { adamwStep, clipByGlobalNorm } from "./ops.ts";
import { randomArray, worstFiniteDifference } from "./testing.ts";
import {
  attentionForward,
  dropoutKey,
  dropoutMask,
  hash32,
  layernormBackward,
  layernormForward,
} from "./transformer-ops.ts";

const tiny = gptSpec({
  vocabSize: 7,
  contextLength: 6,
  layers: 2,
  heads: 2,
  width: 8,
  dropout: 0.2,
});

describe("the GPT reference", () => {
  it("matches central finite differences at every parameter, with dropout on (float64)", () => {
    const params = randomArray(parameterLayout(tiny).size, 5, 0.5);
    const B = 2;
    const T = 5; // shorter than the context: generation runs such rows
    const next = seededRandom(9);
    const tokens = Int32Array.from({ length: B * T }, () => Math.floor(next() * 7));
    const targets = Int32Array.from({ length: B * T }, () => Math.floor(next() * 7));
    const options = { dropoutSeed: 1234 };
    const { grad } = gptLossAndGradient(tiny, params, tokens, targets, B, T, options);
    const loss = () => gptLossAndGradient(tiny, params, tokens, targets, B, T, options).loss;
    expect(worstFiniteDifference(params, grad, loss, 1e-5, 1e-4)).toBeLessThan(1e-5);
  });

  it("is causal: a later token changes no earlier logit", () => {
    const params = initParameters(tiny);
    const a = gptLogits(tiny, params, Int32Array.from([1, 2, 3, 4]), 1, 4);
    const b = gptLogits(tiny, params, Int32Array.from([1, 2, 3, 6]), 1, 4);
    expect(a.subarray(0, 3 * 7)).toEqual(b.subarray(0, 3 * 7));
    expect(a.subarray(3 * 7)).not.toEqual(b.subarray(3 * 7));
  });

  it("LayerNorm's backward matches finite differences of its forward", () => {
    const N = 3;
    const C = 5;
    const x = randomArray(N * C, 1, 2);
    const w = randomArray(C, 2);
    const bias = randomArray(C, 3);
    const dout = randomArray(N * C, 4);
    const loss = (xs: Float64Array) =>
      layernormForward(xs, w, bias, N, C).out.reduce((s, v, i) => s + v * dout[i]!, 0);
    const f = layernormForward(x, w, bias, N, C);
    const { dinp } = layernormBackward(x, w, f.mean, f.rstd, dout, N, C);
    for (let i = 0; i < x.length; i++) {
      const up = Float64Array.from(x);
      up[i]! += 1e-6;
      const down = Float64Array.from(x);
      down[i]! -= 1e-6;
      expect((loss(up) - loss(down)) / 2e-6).toBeCloseTo(dinp[i]!, 6);
    }
  });

  it("attention's log-sum-exp is that of its causal scores", () => {
    const B = 1;
    const T = 3;
    const C = 4;
    const qkv = randomArray(B * T * 3 * C, 7);
    const { lse } = attentionForward(qkv, B, T, C, 1);
    // The first query sees only the first key: lse = q0·k0/√C.
    let dot = 0;
    for (let d = 0; d < C; d++) dot += qkv[d]! * qkv[C + d]!;
    expect(lse[0]).toBeCloseTo(dot / 2, 12);
  });

  it("drops a seeded fraction p of elements, the same mask from the same key", () => {
    const key = dropoutKey(42, 3);
    const mask = dropoutMask(key, 0.2, 100_000);
    const dropped = mask.filter((m) => m === 0).length / mask.length;
    expect(dropped).toBeGreaterThan(0.19);
    expect(dropped).toBeLessThan(0.21);
    expect(mask.every((m) => m === 0 || m === 1.25)).toBe(true);
    expect(dropoutMask(key, 0.2, 100)).toEqual(mask.subarray(0, 100));
    expect(dropoutMask(dropoutKey(42, 4), 0.2, 100)).not.toEqual(mask.subarray(0, 100));
    expect(hash32(0)).toBe(0); // lowbias32 fixes zero; the key is never used bare
  });
});

describe("the GPT model spec", () => {
  it("names every tensor in GPT-2's order in one buffer, decaying only matrices", () => {
    const layout = parameterLayout(shakespeareGpt);
    expect(layout.slots.slice(0, 4).map((s) => `${s.name}[${s.shape}]`)).toEqual([
      "wte.weight[65,64]",
      "wpe.weight[64,64]",
      "blocks.0.ln1.weight[64]",
      "blocks.0.ln1.bias[64]",
    ]);
    expect(layout.slots.map((s) => s.name)).toContain("blocks.1.attn.qkv.weight");
    expect(layout.slots.at(-1)!.name).toBe("lnf.bias");
    expect(layout.size).toBe(65 * 64 + 64 * 64 + 2 * (12 * 64 * 64 + 13 * 64) + 2 * 64);
    const decayed = layout.slots
      .filter((s) => s.decay)
      .map((s) => s.name.split(".").slice(2).join("."));
    expect(new Set(decayed)).toEqual(
      new Set(["attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight"]),
    );
    const mask = decayMask(layout);
    const qkv = layout.slots.find((s) => s.name === "blocks.0.attn.qkv.weight")!;
    expect((mask[qkv.offset >>> 5]! >>> (qkv.offset & 31)) & 1).toBe(1);
    expect(mask[0]).toBe(0); // wte
  });

  it("initializes as GPT-2 does: σ 0.02, residual projections σ 0.02/√(2·layers), norms 1", () => {
    const spec = gptSpec({ vocabSize: 65, contextLength: 64, layers: 4, heads: 4, width: 128 });
    const params = initParameters(spec);
    const layout = parameterLayout(spec);
    const std = (name: string) => {
      const s = layout.slots.find((x) => x.name === name)!;
      const v = params.subarray(s.offset, s.offset + s.size);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    };
    expect(std("blocks.0.mlp.fc.weight")).toBeCloseTo(0.02, 3);
    expect(std("wte.weight")).toBeCloseTo(0.02, 3);
    expect(std("blocks.2.attn.proj.weight")).toBeCloseTo(0.02 / Math.sqrt(8), 3);
    const ln = layout.slots.find((x) => x.name === "blocks.3.ln2.weight")!;
    expect([...params.subarray(ln.offset, ln.offset + ln.size)].every((v) => v === 1)).toBe(true);
    // Byte comparisons: a deep equality over 800k elements takes seconds.
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expect(bytes(initParameters(spec)).equals(bytes(params))).toBe(true);
    expect(bytes(initParameters(spec, 2)).equals(bytes(params))).toBe(false);
  });
});

describe("the GPT reference as a trainer", () => {
  it("starts at ln(65) on Tiny Shakespeare and learns with AdamW on the CPU", () => {
    const corpus = loadTinyShakespeare();
    const spec = shakespeareGpt;
    const params = Float64Array.from(initParameters(spec));
    const m1 = new Float64Array(params.length);
    const m2 = new Float64Array(params.length);
    const decay = decayMask(parameterLayout(spec));
    const B = 4;
    const T = 64;
    const losses: number[] = [];
    for (let step = 1; step <= 30; step++) {
      const { inputs, targets } = textBatch(corpus.train, B, T, step);
      const { loss, grad } = gptLossAndGradient(spec, params, inputs, targets, B, T);
      losses.push(loss);
      clipByGlobalNorm(grad, 1);
      const hyper = {
        learningRate: 1e-2,
        beta1: 0.9,
        beta2: 0.99,
        epsilon: 1e-8,
        weightDecay: 0.1,
        step,
      };
      adamwStep(params, grad, m1, m2, hyper, decay);
    }
    expect(Math.abs(losses[0]! - Math.log(65))).toBeLessThan(0.1);
    const last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    console.log(`CPU GPT: loss ${losses[0]!.toFixed(3)} → ${last.toFixed(3)} in 30 steps`);
    expect(last).toBeLessThan(3.3);
    const sample = decodeText(
      corpus,
      generate(spec, params, encodeText(corpus, "ROMEO:"), 40, seededRandom(1)),
    );
    expect(sample).toHaveLength(40);
  });
});
