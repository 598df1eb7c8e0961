// A GPT's training step as dispatches: the forward (keeping what the backward needs), the loss,
// and the backward into the gradient buffer, in the order of src/reference/gpt.ts, which is the
// same model on the CPU. The engine (engine.ts) owns the buffers and runs the plan; this module
// says which buffers a GPT needs and what to dispatch.
//
// Activations are [N, ·] with N = B·T rows. The residual stream's gradient lives in one buffer
// (dx) that the LayerNorm backward adds into; each branch's gradient is dx through that branch's
// dropout mask. Weight gradients are written by the matmuls (each weight is used once), except
// the token embedding's, which the tied head writes and the embedding's backward adds to.
import type { ModelSpec, ParameterLayout, Transformer } from "@pangea/shared";
import { attentionKernels, kernels, type MatmulKernels } from "../kernels/index.ts";
import { dropoutKey, dropThreshold } from "../reference/transformer-ops.ts";
import { dropoutStream } from "../reference/gpt.ts";
import {
  type Dispatch,
  matmulGroups,
  prepareDispatch,
  strideGroups,
  uniformOf,
} from "./pipelines.ts";

/** The buffers a GPT's step needs for up to maxBatch sequences: name → bytes. */
export function gptBuffers(t: Transformer, maxBatch: number): Record<string, number> {
  const N = maxBatch * t.contextLength;
  const C = t.width;
  const f = 4; // bytes per float
  const sizes: Record<string, number> = {
    input: N * 4,
    labels: N * 4,
    x0: N * C * f,
    branch: N * C * f, // a branch's output before it joins the stream
    lnf: N * C * f,
    lnfStats: 2 * N * f,
    logits: N * t.vocabSize * f,
    dlogits: N * t.vocabSize * f,
    dx: N * C * f,
    dbranch: N * C * f,
    dC: N * C * f,
    datt: N * C * f,
    d4a: N * 4 * C * f,
    d4b: N * 4 * C * f,
    dqkv: N * 3 * C * f,
    delta: maxBatch * t.heads * t.contextLength * f,
  };
  for (let l = 0; l < t.layers; l++) {
    Object.assign(sizes, {
      [`x${l + 1}`]: N * C * f,
      [`xMid${l}`]: N * C * f,
      [`ln1_${l}`]: N * C * f,
      [`ln1Stats${l}`]: 2 * N * f,
      [`qkv${l}`]: N * 3 * C * f,
      [`att${l}`]: N * C * f,
      [`lse${l}`]: maxBatch * t.heads * t.contextLength * f,
      [`ln2_${l}`]: N * C * f,
      [`ln2Stats${l}`]: 2 * N * f,
      [`fc${l}`]: N * 4 * C * f,
      [`gelu${l}`]: N * 4 * C * f,
    });
  }
  return sizes;
}

export interface GptPlan {
  /** Forward, loss and backward (the gradient norm is the engine's). */
  step: Dispatch[];
  /** Buffers to zero before the step (the stream's gradient, which kernels add into). */
  clears: GPUBuffer[];
  /** Writes this step's dropout keys into the uniforms that draw masks. */
  setDropout(seed: number): void;
}

interface Context {
  device: GPUDevice;
  spec: ModelSpec;
  layout: ParameterLayout;
  buffers: Record<string, GPUBuffer>;
  matmul: MatmulKernels;
  budget: number;
}

/** The plan for batches of B sequences of the full context. */
export function buildGptPlan(ctx: Context, B: number): GptPlan {
  const { device, layout, buffers: b, matmul, budget } = ctx;
  const t = ctx.spec.transformer!;
  const T = t.contextLength;
  const C = t.width;
  const V = t.vocabSize;
  const N = B * T;
  const step: Dispatch[] = [];
  const slot = new Map(layout.slots.map((s) => [s.name, s.offset]));
  const at = (name: string) => slot.get(name)!;
  const buf = (name: string) => b[name]!;
  const add = (
    kernel: Parameters<typeof prepareDispatch>[1],
    uniform: ArrayBuffer,
    storage: GPUBuffer[],
    workgroups: [number, number, number],
  ) => {
    const d = prepareDispatch(device, kernel, uniform, storage, workgroups);
    step.push(d);
    return d;
  };

  // Dropout sites: each keeps its uniform's buffer and fields, so a step rewrites its key.
  const dropping = t.dropout > 0;
  const threshold = dropThreshold(t.dropout);
  const scale = { f32: 1 / (1 - t.dropout) };
  const sites: Array<{ uniform: GPUBuffer; fields: (key: number) => ArrayBuffer; stream: number }> =
    [];
  const keyed = (
    stream: number,
    fields: (key: number) => ArrayBuffer,
    kernel: Parameters<typeof prepareDispatch>[1],
    storage: GPUBuffer[],
    workgroups: [number, number, number],
  ) => {
    const d = add(kernel, fields(0), storage, workgroups);
    sites.push({ uniform: d.uniform, fields, stream });
  };
  const elementwise = (n: number) => (key: number) =>
    uniformOf([n, key, dropping ? threshold : 0, dropping ? scale : { f32: 1 }]);
  const embeddingFields = (key: number) =>
    uniformOf([
      N,
      T,
      C,
      V,
      at("wte.weight"),
      at("wpe.weight"),
      key,
      dropping ? threshold : 0,
      dropping ? scale : { f32: 1 },
    ]);

  /** out[M,n] = inp[M,k] · W[k,n] + bias (fused), W and bias at their offsets in the parameters. */
  const linear = (inp: GPUBuffer, weight: string, out: GPUBuffer, k: number, n: number) =>
    add(
      matmul.forward,
      uniformOf([N, n, k, 0, at(`${weight}.weight`), 0, 1, at(`${weight}.bias`)]),
      [inp, buf("params"), out],
      matmulGroups(N, n, budget),
    );
  /** The gradients of `linear`: its weight and bias, and (into dinp) its input's. */
  const linearBackward = (
    inp: GPUBuffer,
    weight: string,
    dout: GPUBuffer,
    dinp: GPUBuffer,
    k: number,
    n: number,
  ) => {
    add(
      matmul.backwardWeight,
      uniformOf([k, n, N, 0, 0, at(`${weight}.weight`), 0, 0]),
      [inp, dout, buf("grads")],
      matmulGroups(k, n, budget),
    );
    add(
      kernels.biasBackward,
      uniformOf([N, n, at(`${weight}.bias`), 0]),
      [dout, buf("grads")],
      [Math.ceil(n / 64), 1, 1],
    );
    add(
      matmul.backwardInput,
      uniformOf([N, k, n, 0, at(`${weight}.weight`), 0, 0, 0]),
      [dout, buf("params"), dinp],
      matmulGroups(N, k, budget),
    );
  };
  const layernorm = (inp: GPUBuffer, name: string, out: GPUBuffer, stats: GPUBuffer) =>
    add(
      kernels.layernormForward,
      uniformOf([N, C, at(`${name}.weight`), at(`${name}.bias`)]),
      [inp, buf("params"), out, stats],
      strideGroups(N, budget, 64),
    );
  /** LayerNorm's parameter gradients, and its input's added into the stream's gradient dx. */
  const layernormBackward = (inp: GPUBuffer, name: string, stats: GPUBuffer, dout: GPUBuffer) => {
    const u = uniformOf([N, C, at(`${name}.weight`), at(`${name}.bias`)]);
    const storage = [inp, buf("params"), stats, dout, buf("dx"), buf("grads")];
    add(kernels.layernormBackwardParams, u, storage, strideGroups(C, budget, 64));
    add(kernels.layernormBackwardInput, u, storage, strideGroups(N, budget, 64));
  };
  const attention = attentionKernels(C / t.heads);
  const attentionGroups: [number, number, number] = [
    Math.max(1, Math.min(budget, Math.ceil(T / 64) * B * t.heads)),
    1,
    1,
  ];

  // --- forward ---
  keyed(
    dropoutStream.embedding,
    embeddingFields,
    kernels.embeddingForward,
    [buf("input"), buf("params"), buf("x0")],
    strideGroups(N * C, budget),
  );
  for (let l = 0; l < t.layers; l++) {
    const p = `blocks.${l}`;
    layernorm(buf(`x${l}`), `${p}.ln1`, buf(`ln1_${l}`), buf(`ln1Stats${l}`));
    linear(buf(`ln1_${l}`), `${p}.attn.qkv`, buf(`qkv${l}`), C, 3 * C);
    add(
      attention.forward,
      uniformOf([B, T, C, t.heads]),
      [buf(`qkv${l}`), buf(`att${l}`), buf(`lse${l}`)],
      attentionGroups,
    );
    linear(buf(`att${l}`), `${p}.attn.proj`, buf("branch"), C, C);
    keyed(
      dropoutStream.attention(l),
      elementwise(N * C),
      kernels.residual,
      [buf(`x${l}`), buf("branch"), buf(`xMid${l}`)],
      strideGroups(N * C, budget),
    );
    layernorm(buf(`xMid${l}`), `${p}.ln2`, buf(`ln2_${l}`), buf(`ln2Stats${l}`));
    linear(buf(`ln2_${l}`), `${p}.mlp.fc`, buf(`fc${l}`), C, 4 * C);
    add(
      kernels.geluForward,
      uniformOf([N * 4 * C]),
      [buf(`fc${l}`), buf(`gelu${l}`)],
      strideGroups(N * 4 * C, budget),
    );
    linear(buf(`gelu${l}`), `${p}.mlp.proj`, buf("branch"), 4 * C, C);
    keyed(
      dropoutStream.mlp(l),
      elementwise(N * C),
      kernels.residual,
      [buf(`xMid${l}`), buf("branch"), buf(`x${l + 1}`)],
      strideGroups(N * C, budget),
    );
  }
  const xLast = buf(`x${t.layers}`);
  layernorm(xLast, "lnf", buf("lnf"), buf("lnfStats"));
  // The tied head: logits[N,V] = lnf[N,C] · wteᵀ (wte stored [V,C]).
  add(
    matmul.backwardInput,
    uniformOf([N, V, C, 0, at("wte.weight"), 0, 0, 0]),
    [buf("lnf"), buf("params"), buf("logits")],
    matmulGroups(N, V, budget),
  );
  add(
    kernels.softmaxXent,
    uniformOf([N, V, 0, 0]),
    [buf("logits"), buf("labels"), buf("dlogits"), buf("stats")],
    [1, 1, 1],
  );

  // --- backward ---
  add(
    matmul.backwardWeight,
    uniformOf([V, C, N, 0, 0, at("wte.weight"), 0, 0]),
    [buf("dlogits"), buf("lnf"), buf("grads")],
    matmulGroups(V, C, budget),
  );
  add(
    matmul.forward,
    uniformOf([N, C, V, 0, at("wte.weight"), 0, 0, 0]),
    [buf("dlogits"), buf("params"), buf("dC")],
    matmulGroups(N, C, budget),
  );
  layernormBackward(xLast, "lnf", buf("lnfStats"), buf("dC"));
  for (let l = t.layers - 1; l >= 0; l--) {
    const p = `blocks.${l}`;
    keyed(
      dropoutStream.mlp(l),
      elementwise(N * C),
      kernels.dropout,
      [buf("dx"), buf("dbranch")],
      strideGroups(N * C, budget),
    );
    linearBackward(buf(`gelu${l}`), `${p}.mlp.proj`, buf("dbranch"), buf("d4a"), 4 * C, C);
    add(
      kernels.geluBackward,
      uniformOf([N * 4 * C]),
      [buf(`fc${l}`), buf("d4a"), buf("d4b")],
      strideGroups(N * 4 * C, budget),
    );
    linearBackward(buf(`ln2_${l}`), `${p}.mlp.fc`, buf("d4b"), buf("dC"), C, 4 * C);
    layernormBackward(buf(`xMid${l}`), `${p}.ln2`, buf(`ln2Stats${l}`), buf("dC"));
    keyed(
      dropoutStream.attention(l),
      elementwise(N * C),
      kernels.dropout,
      [buf("dx"), buf("dbranch")],
      strideGroups(N * C, budget),
    );
    linearBackward(buf(`att${l}`), `${p}.attn.proj`, buf("dbranch"), buf("datt"), C, C);
    const attentionStorage = [
      buf(`qkv${l}`),
      buf(`att${l}`),
      buf(`lse${l}`),
      buf("datt"),
      buf("dqkv"),
      buf("delta"),
    ];
    const u = uniformOf([B, T, C, t.heads]);
    add(attention.backwardQuery, u, attentionStorage, attentionGroups);
    add(attention.backwardKey, u, attentionStorage, attentionGroups);
    linearBackward(buf(`ln1_${l}`), `${p}.attn.qkv`, buf("dqkv"), buf("dC"), C, 3 * C);
    layernormBackward(buf(`x${l}`), `${p}.ln1`, buf(`ln1Stats${l}`), buf("dC"));
  }
  const embeddingStorage = [buf("input"), buf("dx"), buf("grads")];
  keyed(
    dropoutStream.embedding,
    embeddingFields,
    kernels.embeddingBackwardWte,
    embeddingStorage,
    strideGroups(V * C, budget),
  );
  keyed(
    dropoutStream.embedding,
    embeddingFields,
    kernels.embeddingBackwardWpe,
    embeddingStorage,
    strideGroups(T * C, budget),
  );

  return {
    step,
    clears: [buf("dx")],
    setDropout(seed: number) {
      if (!dropping) return;
      for (const site of sites)
        device.queue.writeBuffer(site.uniform, 0, site.fields(dropoutKey(seed, site.stream)));
    },
  };
}
