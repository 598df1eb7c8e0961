// A decoder-only GPT on the CPU, in float64: forward, backward (the gradient in the parameter
// layout of shared/src/model/model-spec.ts), evaluation and sampling. It is the truth the GPU
// engine is tested against, the evaluator, and a trainer for contributors without a GPU.
//
// The model (GPT-2's, pre-LayerNorm): x = drop(wte[token] + wpe[t]); per block
// x += drop(proj(attention(ln1(x)))); x += drop(mlp.proj(gelu(mlp.fc(ln2(x))))); then
// logits = lnf(x) · wteᵀ (the head is tied to the token embedding).
import { type ModelSpec, type ParameterLayout, parameterLayout, textBatch } from "@pangea/shared";
import {
  biasBackward,
  type Floats,
  geluBackward,
  geluForward,
  matmulBackwardInput,
  matmulBackwardWeight,
  matmulForward,
  softmaxCrossEntropy,
} from "./ops.ts";
import {
  attentionBackward,
  attentionForward,
  dropoutKey,
  dropoutMask,
  embeddingBackward,
  embeddingForward,
  layernormBackward,
  layernormForward,
} from "./transformer-ops.ts";

/** Dropout streams: the embedding's, then per block its attention's and its MLP's. */
export const dropoutStream = {
  embedding: 0,
  attention: (layer: number) => 1 + 2 * layer,
  mlp: (layer: number) => 2 + 2 * layer,
};

export interface GptOptions {
  /** Seeds this step's dropout masks; without it (evaluation, sampling) dropout is off. */
  dropoutSeed?: number;
}

function transformerOf(spec: ModelSpec) {
  const tf = spec.transformer;
  if (!tf) throw new Error(`${spec.name} is not a transformer`);
  return tf;
}

/** The parameters of one slot, by name, as a view of the contiguous buffer. */
function tensors(layout: ParameterLayout, params: Floats) {
  const byName = new Map(layout.slots.map((s) => [s.name, s]));
  return (name: string) => {
    const slot = byName.get(name);
    if (!slot) throw new Error(`no parameter ${name}`);
    return params.subarray(slot.offset, slot.offset + slot.size);
  };
}

function times(a: Float64Array, mask: Float64Array | null): Float64Array {
  if (!mask) return a;
  for (let i = 0; i < a.length; i++) a[i]! *= mask[i]!;
  return a;
}

function forwardWithCache(
  spec: ModelSpec,
  params: Floats,
  tokens: Int32Array,
  B: number,
  T: number,
  options: GptOptions,
) {
  const tf = transformerOf(spec);
  const { width: C, heads: H, layers: L } = tf;
  const N = B * T;
  if (T < 1 || T > tf.contextLength) throw new Error(`T=${T} outside 1..${tf.contextLength}`);
  if (tokens.length !== N) throw new Error(`expected ${N} tokens, got ${tokens.length}`);
  for (const token of tokens) {
    if (!(token >= 0 && token < tf.vocabSize))
      throw new Error(`token ${token} outside the vocabulary`);
  }
  const layout = parameterLayout(spec);
  const p = tensors(layout, params);
  const drop = options.dropoutSeed !== undefined && tf.dropout > 0;
  const mask = (stream: number, n: number) =>
    drop ? dropoutMask(dropoutKey(options.dropoutSeed!, stream), tf.dropout, n) : null;

  const embedMask = mask(dropoutStream.embedding, N * C);
  let x = times(embeddingForward(tokens, p("wte.weight"), p("wpe.weight"), B, T, C), embedMask);
  const blocks = [];
  for (let l = 0; l < L; l++) {
    const w = (name: string) => p(`blocks.${l}.${name}`);
    const xIn = x;
    const ln1 = layernormForward(xIn, w("ln1.weight"), w("ln1.bias"), N, C);
    const qkv = matmulForward(ln1.out, w("attn.qkv.weight"), w("attn.qkv.bias"), N, C, 3 * C);
    const att = attentionForward(qkv, B, T, C, H);
    const attnMask = mask(dropoutStream.attention(l), N * C);
    const proj = times(
      matmulForward(att.out, w("attn.proj.weight"), w("attn.proj.bias"), N, C, C),
      attnMask,
    );
    const xMid = Float64Array.from(xIn, (v, i) => v + proj[i]!);
    const ln2 = layernormForward(xMid, w("ln2.weight"), w("ln2.bias"), N, C);
    const fc = matmulForward(ln2.out, w("mlp.fc.weight"), w("mlp.fc.bias"), N, C, 4 * C);
    const gelu = geluForward(fc);
    const mlpMask = mask(dropoutStream.mlp(l), N * C);
    const mlp = times(
      matmulForward(gelu, w("mlp.proj.weight"), w("mlp.proj.bias"), N, 4 * C, C),
      mlpMask,
    );
    x = Float64Array.from(xMid, (v, i) => v + mlp[i]!);
    blocks.push({ xIn, ln1, qkv, att, attnMask, xMid, ln2, fc, gelu, mlpMask });
  }
  const lnf = layernormForward(x, p("lnf.weight"), p("lnf.bias"), N, C);
  const logits = headForward(lnf.out, p("wte.weight"), N, C, tf.vocabSize);
  return { tf, layout, p, embedMask, blocks, xLast: x, lnf, logits };
}

/** logits[N,V] = x[N,C] · wteᵀ (wte is [V,C]). */
function headForward(x: Floats, wte: Floats, N: number, C: number, V: number): Float64Array {
  return matmulBackwardInput(x, wte, N, V, C);
}

/** The logits [B·T, vocabulary] of a batch of token rows (no dropout). */
export function gptLogits(
  spec: ModelSpec,
  params: Floats,
  tokens: Int32Array,
  B: number,
  T: number,
): Float64Array {
  return forwardWithCache(spec, params, tokens, B, T, {}).logits;
}

/**
 * The mean next-token cross-entropy of a batch (`targets[i]` follows `tokens[i]`), the count of
 * positions whose arg-max is the target, and the gradient of the loss with respect to every
 * parameter, in the parameter layout's order.
 */
export function gptLossAndGradient(
  spec: ModelSpec,
  params: Floats,
  tokens: Int32Array,
  targets: Int32Array,
  B: number,
  T: number,
  options: GptOptions = {},
): { loss: number; correct: number; grad: Float64Array } {
  const f = forwardWithCache(spec, params, tokens, B, T, options);
  const { tf, layout, p } = f;
  const { width: C, heads: H, vocabSize: V } = tf;
  const N = B * T;
  const { loss, correct, dlogits } = softmaxCrossEntropy(f.logits, targets, N, V);
  const grad = new Float64Array(layout.size);
  const slot = new Map(layout.slots.map((s) => [s.name, s]));
  const put = (name: string, values: Float64Array) => {
    const s = slot.get(name)!;
    for (let i = 0; i < s.size; i++) grad[s.offset + i]! += values[i]!;
  };

  // Head (tied): dwte = dlogitsᵀ · lnf, dlnf = dlogits · wte.
  put("wte.weight", matmulBackwardWeight(dlogits, f.lnf.out, N, V, C));
  const dlnf = matmulForward(dlogits, p("wte.weight"), null, N, V, C);
  const lnfB = layernormBackward(f.xLast, p("lnf.weight"), f.lnf.mean, f.lnf.rstd, dlnf, N, C);
  put("lnf.weight", lnfB.dweight);
  put("lnf.bias", lnfB.dbias);
  // dx: the gradient flowing down the residual stream.
  const dx = lnfB.dinp;
  for (let l = tf.layers - 1; l >= 0; l--) {
    const c = f.blocks[l]!;
    const name = (n: string) => `blocks.${l}.${n}`;
    const w = (n: string) => p(name(n));
    // x = xMid + drop(mlp): the MLP's output gradient is dx through the same mask.
    const dmlp = times(Float64Array.from(dx), c.mlpMask);
    put(name("mlp.proj.weight"), matmulBackwardWeight(c.gelu, dmlp, N, 4 * C, C));
    put(name("mlp.proj.bias"), biasBackward(dmlp, N, C));
    const dgelu = matmulBackwardInput(dmlp, w("mlp.proj.weight"), N, 4 * C, C);
    const dfc = geluBackward(c.fc, dgelu);
    put(name("mlp.fc.weight"), matmulBackwardWeight(c.ln2.out, dfc, N, C, 4 * C));
    put(name("mlp.fc.bias"), biasBackward(dfc, N, 4 * C));
    const dln2 = matmulBackwardInput(dfc, w("mlp.fc.weight"), N, C, 4 * C);
    const ln2B = layernormBackward(c.xMid, w("ln2.weight"), c.ln2.mean, c.ln2.rstd, dln2, N, C);
    put(name("ln2.weight"), ln2B.dweight);
    put(name("ln2.bias"), ln2B.dbias);
    for (let i = 0; i < dx.length; i++) dx[i]! += ln2B.dinp[i]!;
    // xMid = xIn + drop(proj(attention)).
    const dproj = times(Float64Array.from(dx), c.attnMask);
    put(name("attn.proj.weight"), matmulBackwardWeight(c.att.out, dproj, N, C, C));
    put(name("attn.proj.bias"), biasBackward(dproj, N, C));
    const datt = matmulBackwardInput(dproj, w("attn.proj.weight"), N, C, C);
    const dqkv = attentionBackward(c.qkv, c.att.out, c.att.lse, datt, B, T, C, H);
    put(name("attn.qkv.weight"), matmulBackwardWeight(c.ln1.out, dqkv, N, C, 3 * C));
    put(name("attn.qkv.bias"), biasBackward(dqkv, N, 3 * C));
    const dln1 = matmulBackwardInput(dqkv, w("attn.qkv.weight"), N, C, 3 * C);
    const ln1B = layernormBackward(c.xIn, w("ln1.weight"), c.ln1.mean, c.ln1.rstd, dln1, N, C);
    put(name("ln1.weight"), ln1B.dweight);
    put(name("ln1.bias"), ln1B.dbias);
    for (let i = 0; i < dx.length; i++) dx[i]! += ln1B.dinp[i]!;
  }
  const demb = times(dx, f.embedMask);
  const { dwte, dwpe } = embeddingBackward(tokens, demb, B, T, C, V);
  put("wte.weight", dwte);
  const wpe = slot.get("wpe.weight")!;
  for (let i = 0; i < T * C; i++) grad[wpe.offset + i]! += dwpe[i]!;
  return { loss, correct, grad };
}

/**
 * The mean next-token loss (nats per token) and accuracy (arg-max is the next token) over
 * `windows` seeded windows of the context's length drawn from `tokens` (a validation split),
 * evaluated `batch` windows at a time without dropout.
 */
export function evaluateText(
  spec: ModelSpec,
  params: Floats,
  tokens: Uint8Array,
  windows: number,
  seed: number,
  batch = 8,
): { loss: number; accuracy: number } {
  const tf = transformerOf(spec);
  const T = tf.contextLength;
  let total = 0;
  let correct = 0;
  for (let done = 0; done < windows; done += batch) {
    const B = Math.min(batch, windows - done);
    const { inputs, targets } = textBatch(tokens, B, T, seed + done);
    const logits = gptLogits(spec, params, inputs, B, T);
    const r = softmaxCrossEntropy(logits, targets, B * T, tf.vocabSize);
    total += r.loss * B;
    correct += r.correct;
  }
  return { loss: total / windows, accuracy: correct / (windows * T) };
}

/**
 * Samples `count` tokens after `prompt` (temperature 1, or greedy at 0), the context cropped to
 * the model's last contextLength tokens, with a seeded generator so a sample can be reproduced.
 */
export function generate(
  spec: ModelSpec,
  params: Floats,
  prompt: number[],
  count: number,
  random: () => number,
  temperature = 1,
): number[] {
  const tf = transformerOf(spec);
  const out = [...prompt];
  for (let i = 0; i < count; i++) {
    const context = out.slice(-tf.contextLength);
    const T = context.length;
    const logits = gptLogits(spec, params, Int32Array.from(context), 1, T);
    const last = logits.subarray((T - 1) * tf.vocabSize, T * tf.vocabSize);
    let next = 0;
    if (temperature <= 0) {
      for (let v = 1; v < tf.vocabSize; v++) if (last[v]! > last[next]!) next = v;
    } else {
      let max = Number.NEGATIVE_INFINITY;
      for (const v of last) max = Math.max(max, v);
      const weights = Array.from(last, (v) => Math.exp((v - max) / temperature));
      let r = random() * weights.reduce((a, b) => a + b, 0);
      next = weights.length - 1;
      for (let v = 0; v < weights.length; v++) {
        r -= weights[v]!;
        if (r < 0) {
          next = v;
          break;
        }
      }
    }
    out.push(next);
  }
  return out.slice(prompt.length);
}
