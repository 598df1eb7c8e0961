// A model measured on held-out data, one part at a time: the coordinator's own evaluation and an
// evaluation lease (a contributor's) both call `measureHeldOut`, on the same parts, so that what
// two sessions report and what the coordinator computes are the same numbers (float64 on the
// same float32 parameters) and can be compared.
import {
  type DatasetShard,
  denseLayers,
  decodeText,
  encodeText,
  gatherBatch,
  type HeldOut,
  type ModelSpec,
  seededRandom,
  type TextCorpus,
} from "@pangea/shared";
import { generate, gptLogits } from "./gpt.ts";
import { forward } from "./mlp.ts";
import { type Floats, softmaxCrossEntropy } from "./ops.ts";

export interface HeldOutMeasure {
  /** The sum over the part's images or windows of each one's mean loss, in nats. */
  loss: number;
  /** Correct predictions: images, or next characters. */
  correct: number;
  /** The generated text, prompt included ("" for a loss part). */
  sample: string;
}

/**
 * The first tokens of the `count` validation windows the evaluation measures: one seeded draw
 * per window (seed + w), as `evaluateText(…, 1, seed + w, 1)` picks them.
 */
export function validationWindows(
  tokens: number,
  T: number,
  seed: number,
  count: number,
): number[] {
  return Array.from({ length: count }, (_, w) =>
    Math.floor(seededRandom(seed + w)() * (tokens - T)),
  );
}

/** The prompt's tokens, or the first character's where the vocabulary cannot spell it. */
export function promptTokens(corpus: TextCorpus, prompt: string): number[] {
  try {
    return encodeText(corpus, prompt);
  } catch {
    return [0];
  }
}

/** Measures one part of an evaluation; throws on an offset outside the held-out split. */
export function measureHeldOut(
  model: ModelSpec,
  params: Floats,
  shard: DatasetShard,
  part: HeldOut,
): HeldOutMeasure {
  if (part.sampleTokens > 0) {
    if (shard.kind !== "text") throw new Error("only a text dataset has samples");
    const prompt = promptTokens(shard.corpus, part.prompt);
    const out = generate(model, params, prompt, part.sampleTokens, seededRandom(part.seed));
    return { loss: 0, correct: 0, sample: decodeText(shard.corpus, [...prompt, ...out]) };
  }
  if (shard.kind === "images") {
    const test = shard.test;
    for (const i of part.offsets)
      if (!(i < test.count)) throw new Error(`image ${i} is outside ${test.count} test images`);
    const n = part.offsets.length;
    if (n === 0) return { loss: 0, correct: 0, sample: "" };
    const { inputs, labels } = gatherBatch(test, part.offsets);
    const classes = denseLayers(model).at(-1)!.outputs;
    const r = softmaxCrossEntropy(forward(model, params, inputs, n), labels, n, classes);
    return { loss: r.loss * n, correct: r.correct, sample: "" };
  }
  const tf = model.transformer;
  if (!tf) throw new Error("a text dataset needs a transformer model");
  const T = tf.contextLength;
  const tokens = shard.corpus.validation;
  let loss = 0;
  let correct = 0;
  const inputs = new Int32Array(T);
  const targets = new Int32Array(T);
  for (const start of part.offsets) {
    if (!(start + T < tokens.length))
      throw new Error(`window at ${start} runs past ${tokens.length} validation tokens`);
    for (let t = 0; t < T; t++) {
      inputs[t] = tokens[start + t]!;
      targets[t] = tokens[start + t + 1]!;
    }
    const r = softmaxCrossEntropy(gptLogits(model, params, inputs, 1, T), targets, T, tf.vocabSize);
    loss += r.loss;
    correct += r.correct;
  }
  return { loss, correct, sample: "" };
}
