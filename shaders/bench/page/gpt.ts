// The GPT half of `pnpm bench:kernels`: causal attention forward+backward, and training tokens/s
// of the Shakespeare GPT (2 layers, 4 heads, width 64, context 64) with Adam on the same seeded
// batches, in our engine and in TensorFlow.js WebGPU (the same model written with tf ops, its
// gradient from tf's autodiff), and in jax-js (the same again with jax's `valueAndGrad`, jitted).
// The losses after a few steps show it is the same model.
import {
  decodeTextShard,
  encodeTextShard,
  initParameters,
  type ModelSpec,
  parameterLayout,
  seededRandom,
  textBatch,
} from "@pangea/shared";
import type * as jaxNamespace from "@jax-js/jax";
import type * as tfNamespace from "@tensorflow/tfjs-core";
import text from "../../../shared/data/tinyshakespeare.txt?raw";
import { attentionKernels } from "../../src/kernels/index.ts";
import { TrainingEngine } from "../../src/runtime/engine.ts";
import type { AdapterReport } from "../../src/runtime/gpu.ts";
import {
  prepareDispatch,
  record,
  uniformOf,
  workgroupBudget,
} from "../../src/runtime/pipelines.ts";

type Tf = typeof tfNamespace;

export interface AttentionRow {
  shape: [number, number, number, number]; // B, T, C, H
  library: string;
  milliseconds: number | null;
  note?: string;
}

export interface GptRow {
  library: string;
  tokensPerSecond: number | null;
  loss: number | null;
  note?: string;
}

const LEARNING_RATE = 1e-3;
const CHECK_STEPS = 5;

/** Causal attention, unfused, in tf ops: [B·T, 3C] → [B·T, C]. */
function tfAttention(
  tf: Tf,
  qkv: tfNamespace.Tensor2D,
  B: number,
  T: number,
  C: number,
  H: number,
) {
  const hs = C / H;
  const heads = (x: tfNamespace.Tensor) =>
    tf.reshape(tf.transpose(tf.reshape(x, [B, T, H, hs]), [0, 2, 1, 3]), [B * H, T, hs]);
  const [q, k, v] = tf.split(qkv, 3, 1);
  const scores = tf.mul(tf.matMul(heads(q!), heads(k!), false, true), 1 / Math.sqrt(hs));
  const future = tf.sub(tf.linalg.bandPart(tf.ones([T, T]), 0, -1), tf.eye(T)); // s > t
  const masked = tf.add(scores, tf.mul(future, -1e9));
  const y = tf.matMul(tf.softmax(masked), heads(v!)) as tfNamespace.Tensor3D;
  return tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, hs]), [0, 2, 1, 3]), [B * T, C]);
}

function tfGelu(tf: Tf, x: tfNamespace.Tensor) {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

function tfLayernorm(tf: Tf, x: tfNamespace.Tensor, w: tfNamespace.Tensor, b: tfNamespace.Tensor) {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, 1e-5))), w), b);
}

/** The GPT in tf ops with tf's Adam: same layout, same initialization. */
function tfGpt(tf: Tf, spec: ModelSpec) {
  const t = spec.transformer!;
  const { width: C, heads: H, contextLength: T } = t;
  const slots = parameterLayout(spec).slots;
  const init = initParameters(spec);
  const fresh = () =>
    slots.map((s) => tf.tensor(init.subarray(s.offset, s.offset + s.size), s.shape));
  const variables = fresh().map((x) => tf.variable(x));
  const p = new Map(slots.map((s, i) => [s.name, variables[i]!]));
  const w = (name: string) => p.get(name)!;
  let optimizer = tf.train.adam(LEARNING_RATE, 0.9, 0.999, 1e-8);
  const loss = (tokens: Int32Array, targets: Int32Array, B: number) => {
    const N = B * T;
    const ids = tf.tensor1d(tokens, "int32");
    const positions = tf.tensor1d(
      Int32Array.from({ length: N }, (_, i) => i % T),
      "int32",
    );
    let x: tfNamespace.Tensor2D = tf.add(
      tf.gather(w("wte.weight"), ids),
      tf.gather(w("wpe.weight"), positions),
    );
    const linear = (h: tfNamespace.Tensor, name: string) =>
      tf.add(
        tf.matMul(h as tfNamespace.Tensor2D, w(`${name}.weight`) as tfNamespace.Tensor2D),
        w(`${name}.bias`),
      );
    for (let l = 0; l < t.layers; l++) {
      const b = `blocks.${l}`;
      const h = tfLayernorm(tf, x, w(`${b}.ln1.weight`), w(`${b}.ln1.bias`));
      const att = tfAttention(tf, linear(h, `${b}.attn.qkv`) as tfNamespace.Tensor2D, B, T, C, H);
      x = tf.add(x, linear(att, `${b}.attn.proj`));
      const h2 = tfLayernorm(tf, x, w(`${b}.ln2.weight`), w(`${b}.ln2.bias`));
      x = tf.add(x, linear(tfGelu(tf, linear(h2, `${b}.mlp.fc`)), `${b}.mlp.proj`));
    }
    const final = tfLayernorm(tf, x, w("lnf.weight"), w("lnf.bias")) as tfNamespace.Tensor2D;
    const logits = tf.matMul(final, w("wte.weight") as tfNamespace.Tensor2D, false, true);
    const labels = tf.oneHot(tf.tensor1d(targets, "int32"), t.vocabSize);
    return tf.losses.softmaxCrossEntropy(labels, logits) as tfNamespace.Scalar;
  };
  return {
    reset() {
      for (const [i, x] of fresh().entries()) {
        variables[i]!.assign(x);
        x.dispose();
      }
      optimizer.dispose();
      optimizer = tf.train.adam(LEARNING_RATE, 0.9, 0.999, 1e-8);
    },
    async step(tokens: Int32Array, targets: Int32Array, B: number): Promise<number> {
      const cost = tf.tidy(
        () => optimizer.minimize(() => loss(tokens, targets, B), true, variables)!,
      );
      const value = (await cost.data())[0]!;
      cost.dispose();
      return value;
    },
    dispose() {
      for (const v of variables) v.dispose();
      optimizer.dispose();
    },
  };
}

type Jax = typeof jaxNamespace;
type JaxArray = jaxNamespace.Array;

/**
 * The GPT in jax-js: the loss as a function of the parameters (in layout order), its value and
 * gradient from `valueAndGrad`, jitted; Adam written out as jax-js reads it. jax-js counts
 * references: every array is consumed by the call it is passed to, so a second use takes `.ref`.
 */
function jaxGpt(jax: Jax, spec: ModelSpec, B: number) {
  const np = jax.numpy;
  const t = spec.transformer!;
  const { width: C, heads: H, contextLength: T, vocabSize: V } = t;
  const hs = C / H;
  const N = B * T;
  const slots = parameterLayout(spec).slots;
  const index = new Map(slots.map((s, i) => [s.name, i]));
  const init = initParameters(spec);
  const fresh = () =>
    slots.map((s) => np.array(init.slice(s.offset, s.offset + s.size)).reshape(s.shape));
  const layernorm = (x: JaxArray, w: JaxArray, b: JaxArray) => {
    const centered = x.ref.sub(np.mean(x, -1, { keepdims: true }));
    const variance = np.mean(np.square(centered.ref), -1, { keepdims: true });
    return centered
      .div(np.sqrt(variance.add(1e-5)))
      .mul(w)
      .add(b);
  };
  const loss = (
    params: JaxArray[],
    tokens: JaxArray,
    targets: JaxArray,
    positions: JaxArray,
    future: JaxArray,
  ) => {
    const w = (name: string) => params[index.get(name)!]!;
    let x = np.take(w("wte.weight").ref, tokens, 0).add(np.take(w("wpe.weight"), positions, 0));
    const linear = (h: JaxArray, name: string) =>
      np.matmul(h, w(`${name}.weight`)).add(w(`${name}.bias`));
    for (let l = 0; l < t.layers; l++) {
      const b = `blocks.${l}`;
      const h = layernorm(x.ref, w(`${b}.ln1.weight`), w(`${b}.ln1.bias`));
      const [q, k, v] = np.split(linear(h, `${b}.attn.qkv`), 3, 1) as [
        JaxArray,
        JaxArray,
        JaxArray,
      ];
      const heads = (a: JaxArray) => a.reshape([B, T, H, hs]).transpose([0, 2, 1, 3]);
      const scores = np
        .matmul(heads(q), k.reshape([B, T, H, hs]).transpose([0, 2, 3, 1]))
        .mul(1 / Math.sqrt(hs))
        .add(future.ref);
      const y = np.matmul(jax.nn.softmax(scores, -1), heads(v));
      x = x.add(linear(y.transpose([0, 2, 1, 3]).reshape([N, C]), `${b}.attn.proj`));
      const h2 = layernorm(x.ref, w(`${b}.ln2.weight`), w(`${b}.ln2.bias`));
      const mlp = jax.nn.gelu(linear(h2, `${b}.mlp.fc`), { approximate: true });
      x = x.add(linear(mlp, `${b}.mlp.proj`));
    }
    future.dispose();
    const final = layernorm(x, w("lnf.weight"), w("lnf.bias"));
    const logits = np.matmul(final, w("wte.weight").transpose());
    const picked = jax.nn.logSoftmax(logits, -1).mul(jax.nn.oneHot(targets, V));
    return np.mean(picked.sum(-1)).mul(-1);
  };
  const gradient = jax.jit(jax.valueAndGrad(loss));
  const adam = jax.jit(
    (p: JaxArray, g: JaxArray, m: JaxArray, v: JaxArray, c1: JaxArray, c2: JaxArray) => {
      const m2 = m.mul(0.9).add(g.ref.mul(0.1));
      const v2 = v.mul(0.999).add(g.ref.mul(g).mul(0.001));
      const stepped = p.sub(
        m2.ref
          .div(c1)
          .div(np.sqrt(v2.ref.div(c2)).add(1e-8))
          .mul(LEARNING_RATE),
      );
      return [stepped, m2, v2];
    },
  );
  const positions = Int32Array.from({ length: N }, (_, i) => i % T);
  const future = Float32Array.from({ length: T * T }, (_, i) =>
    i % T > Math.floor(i / T) ? -1e9 : 0,
  );
  let params = fresh();
  let m1 = slots.map((s) => np.zeros(s.shape));
  let m2 = slots.map((s) => np.zeros(s.shape));
  let steps = 0;
  const disposeAll = (arrays: JaxArray[]) => {
    for (const a of arrays) a.dispose();
  };
  return {
    reset() {
      disposeAll([...params, ...m1, ...m2]);
      params = fresh();
      m1 = slots.map((s) => np.zeros(s.shape));
      m2 = slots.map((s) => np.zeros(s.shape));
      steps = 0;
    },
    async step(tokens: Int32Array, targets: Int32Array): Promise<number> {
      steps++;
      const [value, grads] = gradient(
        params.map((p) => p.ref),
        np.array(tokens, { dtype: np.int32 }),
        np.array(targets, { dtype: np.int32 }),
        np.array(positions, { dtype: np.int32 }),
        np.array(future).reshape([T, T]),
      ) as unknown as [JaxArray, JaxArray[]];
      const c1 = 1 - 0.9 ** steps;
      const c2 = 1 - 0.999 ** steps;
      const next = params.map((p, i) =>
        adam(p, grads[i]!, m1[i]!, m2[i]!, np.array([c1]), np.array([c2])),
      ) as unknown as JaxArray[][];
      params = next.map((r) => r[0]!);
      m1 = next.map((r) => r[1]!);
      m2 = next.map((r) => r[2]!);
      return (await value.data())[0]!;
    },
    dispose() {
      disposeAll([...params, ...m1, ...m2]);
    },
  };
}

/** Best seconds per step over three timings of `steps` steps, after a warm-up. */
async function secondsPerStep(step: (i: number) => Promise<unknown>, steps: number) {
  await step(0);
  let best = Number.POSITIVE_INFINITY;
  for (let sample = 0; sample < 3; sample++) {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await step(i);
    best = Math.min(best, (performance.now() - t0) / 1000 / steps);
  }
  return best;
}

const why = (error: unknown) => (error instanceof Error ? error.message : String(error));

export async function benchAttention(
  device: { device: GPUDevice; adapter: AdapterReport },
  tf: Tf | null,
  shapes: Array<[number, number, number, number]>,
  log: (line: string) => void,
): Promise<AttentionRow[]> {
  const rows: AttentionRow[] = [];
  const budget = workgroupBudget(device.adapter);
  for (const shape of shapes) {
    const [B, T, C, H] = shape;
    const next = seededRandom(5);
    const qkvData = Float32Array.from({ length: B * T * 3 * C }, () => next() * 2 - 1);
    const doutData = Float32Array.from({ length: B * T * C }, () => next() * 2 - 1);
    // Ours: forward, then backward by query and by key, in one command buffer per repetition.
    try {
      const d = device.device;
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const make = (floats: number, data?: Float32Array<ArrayBuffer>) => {
        const b = d.createBuffer({ size: Math.max(16, floats * 4), usage });
        if (data) d.queue.writeBuffer(b, 0, data);
        return b;
      };
      const qkv = make(qkvData.length, qkvData);
      const out = make(B * T * C);
      const lse = make(B * H * T);
      const dout = make(doutData.length, doutData);
      const dqkv = make(B * T * 3 * C);
      const delta = make(B * H * T);
      const staging = d.createBuffer({
        size: 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const k = attentionKernels(C / H);
      const u = uniformOf([B, T, C, H]);
      const groups: [number, number, number] = [Math.min(budget, Math.ceil(T / 64) * B * H), 1, 1];
      const storage = [qkv, out, lse, dout, dqkv, delta];
      const dispatches = [
        prepareDispatch(d, k.forward, u, [qkv, out, lse], groups),
        prepareDispatch(d, k.backwardQuery, u, storage, groups),
        prepareDispatch(d, k.backwardKey, u, storage, groups),
      ];
      const seconds = await secondsPerStep(async () => {
        const encoder = d.createCommandEncoder();
        const pass = encoder.beginComputePass();
        for (const x of dispatches) record(pass, x);
        pass.end();
        encoder.copyBufferToBuffer(dqkv, 0, staging, 0, 16);
        d.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ);
        staging.unmap();
      }, 5);
      rows.push({ shape, library: "pangea", milliseconds: seconds * 1000 });
      log(`attention ${shape.join("×")} pangea: ${(seconds * 1000).toFixed(2)} ms`);
      for (const b of [qkv, out, lse, dout, dqkv, delta, staging]) b.destroy();
      for (const x of dispatches) x.uniform.destroy();
    } catch (error) {
      rows.push({ shape, library: "pangea", milliseconds: null, note: why(error) });
    }
    if (!tf) {
      rows.push({ shape, library: "tfjs-webgpu", milliseconds: null, note: "did not start" });
      continue;
    }
    try {
      const qkv = tf.tensor2d(qkvData, [B * T, 3 * C]);
      const dout = tf.tensor2d(doutData, [B * T, C]);
      const grad = tf.grad((x: tfNamespace.Tensor) =>
        tfAttention(tf, x as tfNamespace.Tensor2D, B, T, C, H),
      );
      const seconds = await secondsPerStep(async () => {
        const g = tf.tidy(() => grad(qkv, dout));
        await g.data();
        g.dispose();
      }, 5);
      qkv.dispose();
      dout.dispose();
      rows.push({ shape, library: "tfjs-webgpu", milliseconds: seconds * 1000 });
      log(`attention ${shape.join("×")} tfjs-webgpu: ${(seconds * 1000).toFixed(2)} ms`);
    } catch (error) {
      rows.push({ shape, library: "tfjs-webgpu", milliseconds: null, note: why(error) });
    }
  }
  return rows;
}

export async function benchGptTraining(
  device: { device: GPUDevice; adapter: AdapterReport },
  tf: Tf | null,
  jax: Jax | null,
  spec: ModelSpec,
  batch: number,
  log: (line: string) => void,
): Promise<GptRow[]> {
  const corpus = decodeTextShard(encodeTextShard(text));
  const T = spec.transformer!.contextLength;
  const batches = Array.from({ length: 8 }, (_, i) => textBatch(corpus.train, batch, T, 100 + i));
  const rows: GptRow[] = [];
  const measure = async (
    library: string,
    reset: () => void,
    step: (i: number) => Promise<number>,
  ) => {
    try {
      reset();
      let loss = Number.NaN;
      for (let i = 0; i < CHECK_STEPS; i++) loss = await step(i);
      const seconds = await secondsPerStep(step, 5);
      rows.push({ library, tokensPerSecond: (batch * T) / seconds, loss });
      log(
        `gpt ${library}: ${((batch * T) / seconds).toFixed(0)} tokens/s, loss ${loss.toFixed(4)}`,
      );
    } catch (error) {
      rows.push({ library, tokensPerSecond: null, loss: null, note: why(error) });
    }
  };
  const engine = await TrainingEngine.create(spec, { maxBatch: batch, device });
  await measure(
    "pangea",
    () => {
      engine.setParameters(initParameters(spec));
      engine.resetOptimizer();
    },
    async (i) => {
      const b = batches[i % batches.length]!;
      const optimizer = { kind: "adamw", learningRate: LEARNING_RATE } as const;
      return (await engine.train(b.inputs, b.targets, optimizer)).loss;
    },
  );
  engine.destroy();
  if (tf) {
    const model = tfGpt(tf, spec);
    await measure(
      "tfjs-webgpu",
      () => model.reset(),
      (i) =>
        model.step(
          batches[i % batches.length]!.inputs,
          batches[i % batches.length]!.targets,
          batch,
        ),
    );
    model.dispose();
  } else
    rows.push({ library: "tfjs-webgpu", tokensPerSecond: null, loss: null, note: "did not start" });
  if (jax) {
    try {
      const model = jaxGpt(jax, spec, batch);
      await measure(
        "jax-js",
        () => model.reset(),
        (i) =>
          model.step(batches[i % batches.length]!.inputs, batches[i % batches.length]!.targets),
      );
      model.dispose();
    } catch (error) {
      rows.push({ library: "jax-js", tokensPerSecond: null, loss: null, note: why(error) });
    }
  } else rows.push({ library: "jax-js", tokensPerSecond: null, loss: null, note: "did not start" });
  return rows;
}
