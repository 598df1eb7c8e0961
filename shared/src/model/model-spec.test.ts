import { describe, expect, it } from "vitest";
import { sampleValues } from "../data/dataset.ts";
import { loadMnist } from "../data/mnist.ts";
import { syntheticBlobs } from "../data/synthetic.ts";
import {
  checkModelSpec,
  gptSpec,
  initParameters,
  mlpSpec,
  mnistMlp,
  parameterLayout,
  shakespeareGpt,
} from "./model-spec.ts";

describe("model specs", () => {
  it("lays out the MNIST MLP's 101,770 parameters weight then bias, layer by layer", () => {
    const layout = parameterLayout(mnistMlp);
    expect(layout.size).toBe(101_770);
    expect(layout.slots.map((s) => [s.name, s.shape, s.offset])).toEqual([
      ["dense0.weight", [784, 128], 0],
      ["dense0.bias", [128], 100_352],
      ["dense1.weight", [128, 10], 100_480],
      ["dense1.bias", [10], 101_760],
    ]);
    expect(checkModelSpec(mnistMlp)).toEqual([]);
  });

  it("initializes the same bits from the same seed, He-uniform weights and zero biases", () => {
    const a = initParameters(mnistMlp, 7);
    expect(initParameters(mnistMlp, 7)).toEqual(a);
    expect(initParameters(mnistMlp, 8)).not.toEqual(a);
    const [w0, b0] = parameterLayout(mnistMlp).slots;
    const weights = a.subarray(w0!.offset, w0!.offset + w0!.size);
    const limit = Math.sqrt(6 / 784);
    expect(Math.max(...weights.map(Math.abs))).toBeLessThanOrEqual(limit);
    expect(Math.max(...weights.map(Math.abs))).toBeGreaterThan(limit * 0.99);
    expect([...a.subarray(b0!.offset, b0!.offset + b0!.size)].every((v) => v === 0)).toBe(true);
  });

  it("says why a spec cannot be trained", () => {
    const broken = mlpSpec([4, 3, 2]);
    broken.layers[1] = { kind: "dense", inputs: 5, outputs: 2, activation: "none" };
    expect(checkModelSpec(broken)).toEqual(["layer 1: takes 5 inputs but receives 3"]);
    expect(checkModelSpec({ ...mlpSpec([4, 1]) })).toContain(
      "softmax cross-entropy needs at least 2 classes",
    );
    expect(checkModelSpec(mlpSpec([1000, 100_000, 1000]))).toEqual([
      "200101000 parameters exceed the limit of 50000000",
    ]);
  });
});

describe("datasets", () => {
  it("loads 9,000 MNIST training digits and a balanced, fixed 1,000 held out", () => {
    const { train, test } = loadMnist();
    expect(train.count + test.count).toBe(10_000);
    expect(test.count).toBe(1000);
    const perClass = new Array(10).fill(0);
    for (const label of test.labels) perClass[label]++;
    expect(perClass).toEqual(new Array(10).fill(100));
    expect(Math.min(...sampleValues(train, 0, 10))).toBe(0);
    expect(Math.max(...sampleValues(train, 0, 10))).toBeLessThanOrEqual(1);
    expect(loadMnist()).toBe(loadMnist());
  });

  it("generates the same synthetic blobs from the same seed", () => {
    const a = syntheticBlobs({ count: 100, width: 8, classes: 4, seed: 3 });
    expect(syntheticBlobs({ count: 100, width: 8, classes: 4, seed: 3 })).toEqual(a);
    expect(new Set(a.labels).size).toBe(4);
  });
});

describe("transformer specs", () => {
  const base = { vocabSize: 65, contextLength: 64, layers: 2, heads: 4, width: 64 };

  it("accepts the Shakespeare GPT and nanoGPT's shakespeare-char configuration", () => {
    expect(checkModelSpec(shakespeareGpt)).toEqual([]);
    const nano = gptSpec({
      vocabSize: 65,
      contextLength: 256,
      layers: 6,
      heads: 6,
      width: 384,
      dropout: 0.2,
    });
    expect(checkModelSpec(nano)).toEqual([]);
    expect(parameterLayout(nano).size).toBe(10_770_816); // nanoGPT prints 10.65M: no biases, wpe not counted;
  });

  it("refuses what cannot run, one sentence per problem", () => {
    expect(checkModelSpec(gptSpec({ ...base, heads: 5 }))).toEqual([
      "5 heads do not divide the width of 64",
    ]);
    expect(checkModelSpec(gptSpec({ ...base, contextLength: 4096 }))).toEqual([
      "a context of 4096 exceeds the limit of 2048",
    ]);
    expect(checkModelSpec(gptSpec({ ...base, heads: 1, width: 256 }))).toEqual([
      "heads of 256 exceed the widest the engine runs (128)",
    ]);
    expect(checkModelSpec(gptSpec({ ...base, dropout: 1 }))).toEqual([
      "dropout 1 is outside [0, 1)",
    ]);
    expect(
      checkModelSpec(gptSpec({ ...base, layers: 48, width: 1024, heads: 16 }), {
        maxParameters: 1e8,
      }),
    ).toEqual(["604752896 parameters exceed the limit of 100000000"]);
    const broken = { ...gptSpec({ ...base, layers: 0, vocabSize: 1 }), inputShape: [32] };
    expect(checkModelSpec(broken)).toEqual([
      "layers must be a positive integer",
      "a vocabulary needs at least 2 tokens",
      "input shape [32] must be [64], the context",
    ]);
  });
});
