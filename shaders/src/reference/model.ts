// One entry for whatever the spec describes (the MLP or the GPT), so that a trainer or an
// evaluator needs no branch of its own on the model's kind.
import type { Batch, ModelSpec } from "@pangea/shared";
import { type GptOptions, gptLossAndGradient } from "./gpt.ts";
import { lossAndGradient } from "./mlp.ts";
import type { Floats } from "./ops.ts";

/** The batch's mean loss, its correct predictions, and the gradient of every parameter. */
export function batchLossAndGradient(
  spec: ModelSpec,
  params: Floats,
  batch: Batch,
  options: GptOptions = {},
): { loss: number; correct: number; grad: Float64Array } {
  const tf = spec.transformer;
  if (tf)
    return gptLossAndGradient(
      spec,
      params,
      batch.inputs as Int32Array,
      batch.labels,
      batch.count,
      tf.contextLength,
      options,
    );
  return lossAndGradient(spec, params, batch.inputs as Float32Array, batch.labels, batch.count);
}
