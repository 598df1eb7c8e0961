// The browser half of `pnpm bench:kernels`: matrix-multiply GFLOPS and MLP training samples/s for
// our kernels beside TensorFlow.js's WebGPU backend and jax-js, all in this one page on the same
// adapter. The Node half (../kernels.ts) serves this page, calls runBench and prints the table.
//
// Timing rule, the same for every library: a few warm-up calls (pipelines compiled, buffers
// allocated), then repetitions that end by reading the last result back to the CPU, as a caller
// must; the best of three such timings is kept.
import {
  denseLayers,
  gatherBatch,
  initParameters,
  mnistMlp,
  parameterLayout,
  seededRandom,
  shakespeareGpt,
} from "@pangea/shared";
import { loadMnist } from "@pangea/shared/mnist";
import * as jax from "@jax-js/jax";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-core/dist/register_all_gradients";
import "@tensorflow/tfjs-backend-webgpu";
import { type KernelDescriptor, matmulKernels } from "../../src/kernels/index.ts";
import { type AttentionRow, benchAttention, benchGptTraining, type GptRow } from "./gpt.ts";
import { TrainingEngine } from "../../src/runtime/engine.ts";
import { type AdapterReport, acquireDevice } from "../../src/runtime/gpu.ts";
import {
  matmulGroups,
  prepareDispatch,
  record,
  uniformOf,
  workgroupBudget,
} from "../../src/runtime/pipelines.ts";

export interface MatmulRow {
  shape: [number, number, number];
  library: string;
  gflops: number | null;
  note?: string;
}

export interface TrainingRow {
  batch: number;
  library: string;
  samplesPerSecond: number | null;
  /** Loss after the first 8 steps from the seeded initialization: the same model, the same data. */
  loss: number | null;
  note?: string;
}

export interface BenchResult {
  adapter: AdapterReport;
  userAgent: string;
  matmul: MatmulRow[];
  training: TrainingRow[];
  attention: AttentionRow[];
  gpt: GptRow[];
}

type Log = (line: string) => void;

const log: Log = (line) => console.log(`[bench] ${line}`);

/** Best seconds per repetition: `run(reps)` does reps repetitions and resolves when read back. */
async function bestSecondsPer(
  run: (reps: number) => Promise<void>,
  targetSeconds: number,
): Promise<number> {
  await run(2); // warm-up
  const t0 = performance.now();
  await run(1);
  const one = Math.max(1e-4, (performance.now() - t0) / 1000);
  const reps = Math.max(1, Math.min(200, Math.round(targetSeconds / one)));
  let best = Number.POSITIVE_INFINITY;
  for (let sample = 0; sample < 3; sample++) {
    const start = performance.now();
    await run(reps);
    best = Math.min(best, (performance.now() - start) / 1000 / reps);
  }
  return best;
}

function randomMatrix(rows: number, cols: number, seed: number): Float32Array<ArrayBuffer> {
  const next = seededRandom(seed);
  return Float32Array.from({ length: rows * cols }, () => 2 * next() - 1);
}

// --- matmul --------------------------------------------------------------------------------

async function oursMatmul(
  device: GPUDevice,
  kernel: KernelDescriptor,
  budget: number,
  m: number,
  k: number,
  n: number,
): Promise<number> {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const upload = (data: Float32Array<ArrayBuffer>) => {
    const buffer = device.createBuffer({ size: data.byteLength, usage });
    device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  };
  const a = upload(randomMatrix(m, k, 1));
  const b = upload(randomMatrix(k, n, 2));
  const c = device.createBuffer({ size: m * n * 4, usage });
  const staging = device.createBuffer({
    size: m * n * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const dispatch = prepareDispatch(
    device,
    kernel,
    uniformOf([m, n, k, 0, 0, 0, 0, 0]),
    [a, b, c],
    matmulGroups(m, n, budget),
  );
  // All repetitions in one command buffer, as the engine records a training step.
  const seconds = await bestSecondsPer(async (reps) => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < reps; i++) record(pass, dispatch);
    pass.end();
    encoder.copyBufferToBuffer(c, 0, staging, 0, m * n * 4);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    staging.unmap();
  }, 2);
  for (const buffer of [a, b, c, staging, dispatch.uniform]) buffer.destroy();
  return seconds;
}

type Tf = typeof tf;

async function tfMatmul(tf: Tf, m: number, k: number, n: number): Promise<number> {
  const a = tf.tensor2d(randomMatrix(m, k, 1), [m, k]);
  const b = tf.tensor2d(randomMatrix(k, n, 2), [k, n]);
  const seconds = await bestSecondsPer(async (reps) => {
    let c = tf.matMul(a, b);
    for (let i = 1; i < reps; i++) {
      c.dispose();
      c = tf.matMul(a, b);
    }
    await c.data();
    c.dispose();
  }, 2);
  a.dispose();
  b.dispose();
  return seconds;
}

type Jax = typeof jax;

async function jaxMatmul(jax: Jax, m: number, k: number, n: number): Promise<number> {
  const np = jax.numpy;
  const a = np.array(randomMatrix(m, k, 1)).reshape([m, k]);
  const b = np.array(randomMatrix(k, n, 2)).reshape([k, n]);
  const seconds = await bestSecondsPer(async (reps) => {
    // jax-js evaluates lazily: keep every product and wait for all of them.
    const products = Array.from({ length: reps }, () => np.matmul(a.ref, b.ref));
    await jax.blockUntilReady(products);
    const last = products.pop()!;
    for (const p of products) p.dispose();
    await last.data();
  }, 2);
  a.dispose();
  b.dispose();
  return seconds;
}

// --- training ------------------------------------------------------------------------------

interface Batch {
  inputs: Float32Array;
  labels: Int32Array;
}

function batchesOf(size: number, count: number): Batch[] {
  const { train } = loadMnist();
  const next = seededRandom(7);
  return Array.from({ length: count }, () => {
    const indices = Int32Array.from({ length: size }, () => Math.floor(next() * train.count));
    return gatherBatch(train, indices);
  });
}

const LEARNING_RATE = 0.05;
const MOMENTUM = 0.9;

/** One library's training step on the MLP, from a given initialization. */
interface Trainer {
  /** Back to the seeded initialization with fresh optimizer state. */
  reset(): void;
  /** One SGD-with-momentum step; resolves with the batch's loss, read back to the CPU. */
  step(batch: Batch): Promise<number>;
  dispose(): void;
}

function oursTrainer(engine: TrainingEngine): Trainer {
  return {
    reset() {
      engine.setParameters(initParameters(mnistMlp, 1));
      engine.resetOptimizer();
    },
    async step(batch) {
      const optimizer = { kind: "sgd", learningRate: LEARNING_RATE, momentum: MOMENTUM } as const;
      return (await engine.train(batch.inputs, batch.labels, optimizer)).loss;
    },
    dispose() {},
  };
}

/** The same MLP, initialization and optimizer in TF.js. */
function tfTrainer(tf: Tf): Trainer {
  const layers = denseLayers(mnistMlp);
  const slots = parameterLayout(mnistMlp).slots;
  const init = initParameters(mnistMlp, 1);
  const values = () =>
    slots.map((slot) => tf.tensor(init.subarray(slot.offset, slot.offset + slot.size), slot.shape));
  const variables = values().map((t) => tf.variable(t));
  let optimizer = tf.train.momentum(LEARNING_RATE, MOMENTUM);
  return {
    reset() {
      for (const [i, t] of values().entries()) {
        variables[i]!.assign(t);
        t.dispose();
      }
      optimizer.dispose();
      optimizer = tf.train.momentum(LEARNING_RATE, MOMENTUM);
    },
    async step(batch) {
      const x = tf.tensor2d(batch.inputs, [batch.labels.length, layers[0]!.inputs]);
      const y = tf.oneHot(tf.tensor1d(batch.labels, "int32"), layers.at(-1)!.outputs);
      const cost = optimizer.minimize(
        () => {
          let h: tf.Tensor = x;
          for (const [l, layer] of layers.entries()) {
            h = tf.add(tf.matMul(h, variables[2 * l]!), variables[2 * l + 1]!);
            if (layer.activation === "relu") h = tf.relu(h);
            else if (layer.activation !== "none") throw new Error(`no ${layer.activation} here`);
          }
          return tf.losses.softmaxCrossEntropy(y, h) as tf.Scalar;
        },
        true,
        variables,
      )!;
      const loss = (await cost.data())[0]!;
      for (const t of [x, y, cost]) t.dispose();
      return loss;
    },
    dispose() {
      for (const v of variables) v.dispose();
      optimizer.dispose();
    },
  };
}

const CHECK_STEPS = 8;

/** The loss after CHECK_STEPS steps from the initialization (a same-model check), then speed. */
async function measureTraining(
  trainer: Trainer,
  batches: Batch[],
): Promise<{ seconds: number; loss: number }> {
  trainer.reset();
  let loss = Number.NaN;
  for (let i = 0; i < CHECK_STEPS; i++) loss = await trainer.step(batches[i % batches.length]!);
  let step = 0;
  const seconds = await bestSecondsPer(async (reps) => {
    for (let i = 0; i < reps; i++) await trainer.step(batches[step++ % batches.length]!);
  }, 3);
  return { seconds, loss };
}

// --- the run -------------------------------------------------------------------------------

const why = (error: unknown) => (error instanceof Error ? error.message : String(error));

export async function runBench(options: {
  shapes: Array<[number, number, number]>;
  batches: number[];
  attentionShapes: Array<[number, number, number, number]>;
  gptBatch: number;
  /** Only the GPT's figures (attention and training), skipping matmul and the MLP. */
  gptOnly?: boolean;
}): Promise<BenchResult> {
  const ours = await acquireDevice();
  log(`adapter: ${ours.adapter.description} (software fallback: ${ours.adapter.softwareFallback})`);

  const tfReady = await tf.setBackend("webgpu").catch(() => false);
  let jaxProblem: string | undefined;
  try {
    const devices = await jax.init();
    if (devices.includes("webgpu")) jax.defaultDevice("webgpu");
    else jaxProblem = `jax-js found no WebGPU device (it has: ${devices.join(", ")})`;
  } catch (error) {
    jaxProblem = `jax-js failed to start: ${why(error)}`;
  }

  const matmul: MatmulRow[] = [];
  const budget = workgroupBudget(ours.adapter);
  for (const shape of options.gptOnly ? [] : options.shapes) {
    const [m, k, n] = shape;
    const flops = 2 * m * k * n;
    const ourMatmul = (software: boolean) =>
      oursMatmul(
        ours.device,
        matmulKernels({ softwareFallback: software }).forward,
        budget,
        m,
        k,
        n,
      );
    const contenders: Array<[string, () => Promise<number>, string | undefined]> = [
      ["pangea", () => ourMatmul(ours.adapter.softwareFallback), undefined],
      // The variant the engine does not pick on this adapter, for comparison.
      ["pangea-other", () => ourMatmul(!ours.adapter.softwareFallback), undefined],
      [
        "tfjs-webgpu",
        () => tfMatmul(tf, m, k, n),
        tfReady ? undefined : "TF.js WebGPU backend did not start",
      ],
      ["jax-js", () => jaxMatmul(jax, m, k, n), jaxProblem],
    ];
    for (const [library, run, problem] of contenders) {
      if (problem) {
        matmul.push({ shape, library, gflops: null, note: problem });
        continue;
      }
      try {
        const seconds = await run();
        matmul.push({ shape, library, gflops: flops / seconds / 1e9 });
        log(`matmul ${m}x${k}x${n} ${library}: ${(flops / seconds / 1e9).toFixed(2)} GFLOPS`);
      } catch (error) {
        matmul.push({ shape, library, gflops: null, note: why(error) });
        log(`matmul ${m}x${k}x${n} ${library} failed: ${why(error)}`);
      }
    }
  }

  const training: TrainingRow[] = [];
  const largest = Math.max(...options.batches);
  const engine = await TrainingEngine.create(mnistMlp, { maxBatch: largest, device: ours });
  for (const size of options.gptOnly ? [] : options.batches) {
    const batches = batchesOf(size, 16);
    const contenders: Array<[string, () => Trainer]> = [["pangea", () => oursTrainer(engine)]];
    if (tfReady) contenders.push(["tfjs-webgpu", () => tfTrainer(tf)]);
    else
      training.push({
        batch: size,
        library: "tfjs-webgpu",
        samplesPerSecond: null,
        loss: null,
        note: "TF.js WebGPU backend did not start",
      });
    for (const [library, make] of contenders) {
      try {
        const trainer = make();
        const { seconds, loss } = await measureTraining(trainer, batches);
        trainer.dispose();
        training.push({ batch: size, library, samplesPerSecond: size / seconds, loss });
        log(
          `train batch ${size} ${library}: ${(size / seconds).toFixed(0)} samples/s, loss ${loss.toFixed(3)}`,
        );
      } catch (error) {
        training.push({
          batch: size,
          library,
          samplesPerSecond: null,
          loss: null,
          note: why(error),
        });
      }
    }
  }
  engine.destroy();
  const tfOrNull = tfReady ? tf : null;
  const attention = await benchAttention(ours, tfOrNull, options.attentionShapes, log);
  const gpt = await benchGptTraining(
    ours,
    tfOrNull,
    jaxProblem ? null : jax,
    shakespeareGpt,
    options.gptBatch,
    log,
  );
  return {
    adapter: ours.adapter,
    userAgent: navigator.userAgent,
    matmul,
    training,
    attention,
    gpt,
  };
}

(globalThis as { runBench?: typeof runBench }).runBench = runBench;
