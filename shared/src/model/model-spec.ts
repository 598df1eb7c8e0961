// Models as data. A ModelSpec (the wire's struct, shared/schema/pangea.capnp) lists layers; this
// module derives what every part of Pangea must agree on: the parameters' names, shapes and
// order, their offsets in one contiguous fp32 buffer, and their seeded initialization. The GPU
// runtime, the CPU reference and the coordinator all use this one layout.
//
// Conventions: a dense layer computes Y = X·W + b with X [batch, inputs], W [inputs, outputs]
// (row-major), b [outputs]. Parameters come layer by layer, weight then bias.
import { seededRandom } from "../random.ts";
import type { Activation, ModelSpec } from "../wire/messages.ts";

export interface ParameterSlot {
  /** "dense<i>.weight" or "dense<i>.bias", i counting dense layers from 0. */
  name: string;
  shape: number[];
  /** Offset in elements in the contiguous parameter buffer. */
  offset: number;
  size: number;
}

export interface ParameterLayout {
  slots: ParameterSlot[];
  /** Total parameter count. */
  size: number;
}

/** An MLP: dense layers between `sizes`, `activation` between them, none after the last. */
export function mlpSpec(
  sizes: number[],
  options: { activation?: Activation; seed?: number; name?: string } = {},
): ModelSpec {
  const activation = options.activation ?? "relu";
  const layers: ModelSpec["layers"] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    layers.push({
      kind: "dense",
      inputs: sizes[i]!,
      outputs: sizes[i + 1]!,
      activation: i + 2 < sizes.length ? activation : "none",
    });
  }
  return {
    name: options.name ?? `mlp-${sizes.join("-")}`,
    inputShape: [sizes[0]!],
    layers,
    loss: "softmaxCrossEntropy",
    seed: options.seed ?? 1,
  };
}

/** The MNIST model: 784-128-10 with ReLU, 101,770 parameters. */
export const mnistMlp: ModelSpec = mlpSpec([784, 128, 10], { name: "mnist-mlp-784-128-10" });

/** Why a spec cannot be trained, or an empty list. Specs arrive from the network: check them. */
export function checkModelSpec(spec: ModelSpec, limits = { maxParameters: 50_000_000 }): string[] {
  const problems: string[] = [];
  if (spec.inputShape.length === 0 || spec.inputShape.some((d) => !Number.isInteger(d) || d < 1)) {
    problems.push(`input shape [${spec.inputShape}] is not a list of positive integers`);
  }
  let width = spec.inputShape.reduce((a, b) => a * b, 1);
  let dense = 0;
  let parameters = 0;
  for (const [i, layer] of spec.layers.entries()) {
    if (layer.kind === "flatten") continue;
    dense++;
    if (!Number.isInteger(layer.outputs) || layer.outputs < 1) {
      problems.push(`layer ${i}: outputs must be a positive integer`);
    }
    if (layer.inputs !== width) {
      problems.push(`layer ${i}: takes ${layer.inputs} inputs but receives ${width}`);
    }
    parameters += layer.inputs * layer.outputs + layer.outputs;
    width = layer.outputs;
  }
  if (dense === 0) problems.push("the model has no dense layer");
  if (parameters > limits.maxParameters) {
    problems.push(`${parameters} parameters exceed the limit of ${limits.maxParameters}`);
  }
  if (spec.loss === "softmaxCrossEntropy" && width < 2) {
    problems.push("softmax cross-entropy needs at least 2 classes");
  }
  return problems;
}

/** The dense layers in order, with their index among dense layers. */
export function denseLayers(spec: ModelSpec) {
  return spec.layers.flatMap((layer) => (layer.kind === "dense" ? [layer] : []));
}

export function parameterLayout(spec: ModelSpec): ParameterLayout {
  const slots: ParameterSlot[] = [];
  let offset = 0;
  for (const [i, layer] of denseLayers(spec).entries()) {
    const weight = layer.inputs * layer.outputs;
    slots.push({
      name: `dense${i}.weight`,
      shape: [layer.inputs, layer.outputs],
      offset,
      size: weight,
    });
    offset += weight;
    slots.push({ name: `dense${i}.bias`, shape: [layer.outputs], offset, size: layer.outputs });
    offset += layer.outputs;
  }
  return { slots, size: offset };
}

/**
 * Seeded initialization in one contiguous buffer: weights uniform in ±sqrt(6 / fanIn) (He) before
 * ReLU or GELU, ±sqrt(6 / (fanIn + fanOut)) (Glorot) before none; biases zero. The same seed
 * gives the same bits everywhere.
 */
export function initParameters(spec: ModelSpec, seed = spec.seed): Float32Array {
  const layout = parameterLayout(spec);
  const params = new Float32Array(layout.size);
  for (const [i, layer] of denseLayers(spec).entries()) {
    const slot = layout.slots[2 * i]!;
    const limit =
      layer.activation === "none"
        ? Math.sqrt(6 / (layer.inputs + layer.outputs))
        : Math.sqrt(6 / layer.inputs);
    const next = seededRandom((seed * 1_000_003 + i) >>> 0);
    for (let j = 0; j < slot.size; j++) params[slot.offset + j] = (next() * 2 - 1) * limit;
  }
  return params;
}
