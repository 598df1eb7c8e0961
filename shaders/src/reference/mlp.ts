// The whole model on the CPU, in float64: forward, backward (the gradient in the parameter
// layout of shared/src/model/model-spec.ts) and evaluation. The coordinator evaluates runs with
// `evaluate`; the tests hold the GPU engine's gradients against `lossAndGradient`.
import {
  type Activation,
  type Dataset,
  type ModelSpec,
  denseLayers,
  parameterLayout,
  sampleValues,
} from "@pangea/shared";
import {
  biasBackward,
  type Floats,
  geluBackward,
  geluForward,
  matmulBackwardInput,
  matmulBackwardWeight,
  matmulForward,
  reluBackward,
  reluForward,
  softmaxCrossEntropy,
} from "./ops.ts";

function activate(activation: Activation, x: Float64Array): Float64Array {
  if (activation === "relu") return reluForward(x);
  if (activation === "gelu") return geluForward(x);
  return x;
}

function activateBackward(
  activation: Activation,
  preActivation: Float64Array,
  dout: Float64Array,
): Float64Array {
  if (activation === "relu") return reluBackward(preActivation, dout);
  if (activation === "gelu") return geluBackward(preActivation, dout);
  return dout;
}

/** Logits [batch, classes] of a batch. */
export function forward(
  spec: ModelSpec,
  params: Floats,
  inputs: Floats,
  batch: number,
): Float64Array {
  return forwardWithCache(spec, params, inputs, batch).logits;
}

function forwardWithCache(spec: ModelSpec, params: Floats, inputs: Floats, batch: number) {
  const layout = parameterLayout(spec);
  const layers = denseLayers(spec);
  const layerInputs: Floats[] = [];
  const preActivations: Float64Array[] = [];
  let x: Floats = inputs;
  for (const [i, layer] of layers.entries()) {
    const w = layout.slots[2 * i]!;
    const b = layout.slots[2 * i + 1]!;
    layerInputs.push(x);
    const z = matmulForward(
      x,
      params.subarray(w.offset, w.offset + w.size),
      params.subarray(b.offset, b.offset + b.size),
      batch,
      layer.inputs,
      layer.outputs,
    );
    preActivations.push(z);
    x = activate(layer.activation, z);
  }
  return { logits: x as Float64Array, layerInputs, preActivations, layout, layers };
}

/**
 * The mean softmax cross-entropy loss of a batch, its count of correct predictions, and the
 * gradient of the loss with respect to every parameter, in the parameter layout's order.
 */
export function lossAndGradient(
  spec: ModelSpec,
  params: Floats,
  inputs: Floats,
  labels: Int32Array,
  batch: number,
): { loss: number; correct: number; grad: Float64Array } {
  const { logits, layerInputs, preActivations, layout, layers } = forwardWithCache(
    spec,
    params,
    inputs,
    batch,
  );
  const classes = layers[layers.length - 1]!.outputs;
  const { loss, correct, dlogits } = softmaxCrossEntropy(logits, labels, batch, classes);
  const grad = new Float64Array(layout.size);
  let dout = dlogits;
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const w = layout.slots[2 * i]!;
    const b = layout.slots[2 * i + 1]!;
    const dz = activateBackward(layer.activation, preActivations[i]!, dout);
    grad.set(
      matmulBackwardWeight(layerInputs[i]!, dz, batch, layer.inputs, layer.outputs),
      w.offset,
    );
    grad.set(biasBackward(dz, batch, layer.outputs), b.offset);
    if (i > 0) {
      dout = matmulBackwardInput(
        dz,
        params.subarray(w.offset, w.offset + w.size),
        batch,
        layer.inputs,
        layer.outputs,
      );
    }
  }
  return { loss, correct, grad };
}

/** Mean loss and accuracy over a whole dataset, in batches of `batchSize`. */
export function evaluate(
  spec: ModelSpec,
  params: Floats,
  data: Dataset,
  batchSize = 250,
): { loss: number; accuracy: number } {
  const classes = denseLayers(spec).at(-1)!.outputs;
  let loss = 0;
  let correct = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    const logits = forward(spec, params, sampleValues(data, start, n), n);
    const result = softmaxCrossEntropy(logits, data.labels.subarray(start, start + n), n, classes);
    loss += result.loss * n;
    correct += result.correct;
  }
  return { loss: loss / data.count, accuracy: correct / data.count };
}
