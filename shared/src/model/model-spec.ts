// Models as data. A ModelSpec (the wire's struct, shared/schema/pangea.capnp) lists layers; this
// module derives what every part of Pangea must agree on: the parameters' names, shapes and
// order, their offsets in one contiguous fp32 buffer, and their seeded initialization. The GPU
// runtime, the CPU reference and the coordinator all use this one layout.
//
// Conventions: a dense layer computes Y = X·W + b with X [batch, inputs], W [inputs, outputs]
// (row-major), b [outputs]. Parameters come layer by layer, weight then bias. A transformer's
// matrices follow the same convention (qkv.weight is [width, 3·width]); its parameters come in
// GPT-2's order: wte, wpe, each block (ln1, attn.qkv, attn.proj, ln2, mlp.fc, mlp.proj), lnf.
import { seededRandom } from "../random.ts";
import type { Activation, ModelSpec, Transformer } from "../wire/messages.ts";

export interface ParameterSlot {
  /** "dense<i>.weight" or "dense<i>.bias", i counting dense layers from 0. */
  name: string;
  shape: number[];
  /** Offset in elements in the contiguous parameter buffer. */
  offset: number;
  size: number;
  /** Whether AdamW decays it: matrices do; biases, norms and embeddings do not. */
  decay: boolean;
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

/**
 * A GPT (see Transformer): `layers` blocks of `width` with `heads` heads over `contextLength`
 * tokens of a `vocabSize` vocabulary.
 */
export function gptSpec(
  shape: Omit<Transformer, "dropout"> & { dropout?: number },
  options: { seed?: number; name?: string } = {},
): ModelSpec {
  const transformer = { ...shape, dropout: shape.dropout ?? 0 };
  return {
    name:
      options.name ??
      `gpt-${shape.layers}l-${shape.heads}h-${shape.width}w-${shape.contextLength}t-${shape.vocabSize}v`,
    inputShape: [shape.contextLength],
    layers: [],
    loss: "softmaxCrossEntropy",
    seed: options.seed ?? 1,
    transformer,
  };
}

/** A small character-level GPT for Tiny Shakespeare: 2 layers, 4 heads, width 64, context 64. */
export const shakespeareGpt: ModelSpec = gptSpec(
  { vocabSize: 65, contextLength: 64, layers: 2, heads: 4, width: 64, dropout: 0 },
  { name: "gpt-shakespeare-2x64" },
);

export interface ModelLimits {
  maxParameters: number;
  /** The longest context a transformer may have (attention's cost grows with its square). */
  maxContextLength: number;
  /** The widest head the fused attention kernel holds in registers (attention.wgsl's MAX_HEAD). */
  maxHeadSize: number;
}

export const defaultModelLimits: ModelLimits = {
  maxParameters: 50_000_000,
  maxContextLength: 2048,
  maxHeadSize: 128,
};

const positiveInteger = (v: number) => Number.isInteger(v) && v >= 1;

function checkTransformer(spec: ModelSpec, t: Transformer, limits: ModelLimits): string[] {
  const problems: string[] = [];
  for (const field of ["vocabSize", "contextLength", "layers", "heads", "width"] as const) {
    if (!positiveInteger(t[field])) problems.push(`${field} must be a positive integer`);
  }
  if (t.vocabSize === 1) problems.push("a vocabulary needs at least 2 tokens");
  if (t.contextLength > limits.maxContextLength)
    problems.push(
      `a context of ${t.contextLength} exceeds the limit of ${limits.maxContextLength}`,
    );
  if (t.heads >= 1 && t.width % t.heads !== 0)
    problems.push(`${t.heads} heads do not divide the width of ${t.width}`);
  else if (t.heads >= 1 && t.width / t.heads > limits.maxHeadSize)
    problems.push(
      `heads of ${t.width / t.heads} exceed the widest the engine runs (${limits.maxHeadSize})`,
    );
  if (!(t.dropout >= 0 && t.dropout < 1)) problems.push(`dropout ${t.dropout} is outside [0, 1)`);
  if (spec.layers.length > 0) problems.push("a transformer takes no dense layers");
  if (spec.inputShape.length !== 1 || spec.inputShape[0] !== t.contextLength)
    problems.push(`input shape [${spec.inputShape}] must be [${t.contextLength}], the context`);
  if (spec.loss !== "softmaxCrossEntropy")
    problems.push("a transformer trains with softmax cross-entropy");
  if (problems.length === 0) {
    const parameters = parameterLayout(spec).size;
    if (parameters > limits.maxParameters)
      problems.push(`${parameters} parameters exceed the limit of ${limits.maxParameters}`);
  }
  return problems;
}

/** Why a spec cannot be trained, or an empty list. Specs arrive from the network: check them. */
export function checkModelSpec(spec: ModelSpec, limits: Partial<ModelLimits> = {}): string[] {
  const all = { ...defaultModelLimits, ...limits };
  if (spec.transformer) return checkTransformer(spec, spec.transformer, all);
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
  if (parameters > all.maxParameters) {
    problems.push(`${parameters} parameters exceed the limit of ${all.maxParameters}`);
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
  const add = (name: string, shape: number[], decay: boolean) => {
    const size = shape.reduce((a, b) => a * b, 1);
    slots.push({ name, shape, offset, size, decay });
    offset += size;
  };
  const t = spec.transformer;
  if (t) {
    const C = t.width;
    add("wte.weight", [t.vocabSize, C], false);
    add("wpe.weight", [t.contextLength, C], false);
    for (let l = 0; l < t.layers; l++) {
      const b = `blocks.${l}`;
      add(`${b}.ln1.weight`, [C], false);
      add(`${b}.ln1.bias`, [C], false);
      add(`${b}.attn.qkv.weight`, [C, 3 * C], true);
      add(`${b}.attn.qkv.bias`, [3 * C], false);
      add(`${b}.attn.proj.weight`, [C, C], true);
      add(`${b}.attn.proj.bias`, [C], false);
      add(`${b}.ln2.weight`, [C], false);
      add(`${b}.ln2.bias`, [C], false);
      add(`${b}.mlp.fc.weight`, [C, 4 * C], true);
      add(`${b}.mlp.fc.bias`, [4 * C], false);
      add(`${b}.mlp.proj.weight`, [4 * C, C], true);
      add(`${b}.mlp.proj.bias`, [C], false);
    }
    add("lnf.weight", [C], false);
    add("lnf.bias", [C], false);
    return { slots, size: offset };
  }
  for (const [i, layer] of denseLayers(spec).entries()) {
    add(`dense${i}.weight`, [layer.inputs, layer.outputs], true);
    add(`dense${i}.bias`, [layer.outputs], false);
  }
  return { slots, size: offset };
}

/** Standard normal draws from a seeded uniform stream (Box–Muller). */
function seededNormal(seed: number): () => number {
  const next = seededRandom(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = 1 - next(); // (0, 1]: log(u) is finite
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * next();
    spare = r * Math.sin(a);
    return r * Math.cos(a);
  };
}

/**
 * GPT-2's initialization: embeddings and matrices normal with σ 0.02, the two projections that
 * write into the residual stream (attn.proj, mlp.proj) with σ 0.02/√(2·layers) so that the
 * stream's variance does not grow with depth; LayerNorm weights 1, every bias 0.
 */
function initTransformer(spec: ModelSpec, t: Transformer, seed: number): Float32Array {
  const layout = parameterLayout(spec);
  const params = new Float32Array(layout.size);
  for (const [i, slot] of layout.slots.entries()) {
    const part = slot.name.split(".").at(-2)!;
    if (slot.name.endsWith(".bias")) continue;
    if (part.startsWith("ln")) {
      params.fill(1, slot.offset, slot.offset + slot.size);
      continue;
    }
    const std = part === "proj" ? 0.02 / Math.sqrt(2 * t.layers) : 0.02;
    const normal = seededNormal((seed * 1_000_003 + i) >>> 0);
    for (let j = 0; j < slot.size; j++) params[slot.offset + j] = normal() * std;
  }
  return params;
}

/**
 * Seeded initialization in one contiguous buffer: weights uniform in ±sqrt(6 / fanIn) (He) before
 * ReLU or GELU, ±sqrt(6 / (fanIn + fanOut)) (Glorot) before none; biases zero. The same seed
 * gives the same bits everywhere.
 */
export function initParameters(spec: ModelSpec, seed = spec.seed): Float32Array {
  if (spec.transformer) return initTransformer(spec, spec.transformer, seed);
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

/**
 * Which parameters weight decay applies to, one bit each (bit i % 32 of word i / 32): the
 * optimizers read it instead of searching the layout per element.
 */
export function decayMask(layout: ParameterLayout): Uint32Array<ArrayBuffer> {
  const mask = new Uint32Array(Math.ceil(layout.size / 32));
  for (const slot of layout.slots) {
    if (!slot.decay) continue;
    for (let i = slot.offset; i < slot.offset + slot.size; i++) mask[i >>> 5]! |= 1 << (i & 31);
  }
  return mask;
}
