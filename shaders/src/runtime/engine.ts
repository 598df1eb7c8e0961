// The training engine: a model spec becomes training steps on a WebGPU device.
//
// Parameters, gradients, optimizer state and activations stay on the GPU across steps. A step
// (forward, loss, backward, gradient norm, then packing the update or a local optimizer step) is
// recorded in one command buffer; only the packed update and a few scalars are read back.
// Parameters and gradients use the contiguous layout of shared/src/model/model-spec.ts, so the
// optimizer and the packers run over the whole model at once.
import {
  type Encoding,
  type ModelSpec,
  type ParameterLayout,
  type Tensor,
  checkModelSpec,
  decayMask,
  denseLayers,
  parameterLayout,
} from "@pangea/shared";
import { kernels, type MatmulKernels, matmulKernels } from "../kernels/index.ts";
import { type AdapterReport, acquireDevice } from "./gpu.ts";
import { buildGptPlan, gptBuffers } from "./gpt-plan.ts";
import {
  type Dispatch,
  prepareDispatch,
  record,
  matmulGroups,
  reductionGroups,
  strideGroups,
  uniformOf,
  workgroupBudget,
} from "./pipelines.ts";

/** The local optimizer for training on the tab (local SGD / DiLoCo inner steps, or alone). */
export type LocalOptimizerConfig =
  | { kind: "sgd"; learningRate: number; momentum?: number; weightDecay?: number }
  | {
      kind: "adamw";
      learningRate: number;
      beta1?: number;
      beta2?: number;
      epsilon?: number;
      /** Decays matrices only (model-spec's decayMask). */
      weightDecay?: number;
      /** Clips the gradient to this global norm before the step; 0 or absent: no clipping. */
      maxGradNorm?: number;
    };

export interface StepStats {
  /** Mean softmax cross-entropy over the batch. */
  loss: number;
  /** Samples whose arg-max is the label. */
  correct: number;
  /** ‖gradient‖₂ of the batch. */
  gradNorm: number;
}

export class DeviceLostError extends Error {
  override readonly name = "DeviceLostError";
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

interface Plan {
  batch: number;
  step: Dispatch[]; // forward, loss, backward, gradient norm
  /** Buffers zeroed before the step's pass. */
  clears: GPUBuffer[];
  /** Draws this step's dropout masks (a GPT with dropout). */
  setDropout?: (seed: number) => void;
  packFp16: Dispatch[];
  packInt8: Dispatch[];
}

/** Options of one step. */
export interface StepOptions {
  /** Seeds the step's dropout masks (the reference draws the same with the same seed). */
  dropoutSeed?: number;
}

export class TrainingEngine {
  readonly layout: ParameterLayout;
  /** Resolves when the device is lost (driver reset, tab in background too long, destroy()). */
  readonly lost: Promise<GPUDeviceLostInfo>;
  private lostInfo: GPUDeviceLostInfo | undefined;
  private readonly plans = new Map<number, Plan>();
  private readonly buffers: Record<string, GPUBuffer> = {};
  private readonly reads: Record<string, GPUBuffer> = {};
  private readonly sgd: Dispatch & { uniform: GPUBuffer };
  private readonly adamw: Dispatch & { uniform: GPUBuffer };
  private adamSteps = 0;
  private dropoutSteps = 0;
  /** Workgroups per dispatch (few on a software adapter; see workgroupBudget). */
  private readonly budget: number;
  private readonly matmul: MatmulKernels;

  private constructor(
    readonly spec: ModelSpec,
    readonly device: GPUDevice,
    readonly adapter: AdapterReport,
    readonly maxBatch: number,
  ) {
    this.layout = parameterLayout(spec);
    this.budget = workgroupBudget(adapter);
    this.matmul = matmulKernels(adapter);
    this.lost = device.lost.then((info) => {
      this.lostInfo = info;
      return info;
    });
    const P = this.layout.size;
    const T = this.layout.slots.length;
    const make = (name: string, bytes: number, usage = STORAGE) => {
      this.buffers[name] = device.createBuffer({
        label: name,
        size: Math.max(16, Math.ceil(bytes / 16) * 16),
        usage,
      });
      return this.buffers[name];
    };
    make("params", P * 4);
    make("grads", P * 4);
    make("m1", P * 4);
    make("m2", P * 4);
    if (spec.transformer) {
      for (const [name, bytes] of Object.entries(gptBuffers(spec.transformer, maxBatch)))
        make(name, bytes);
    } else {
      const layers = denseLayers(spec);
      const maxWidth = Math.max(
        spec.inputShape.reduce((a, b) => a * b, 1),
        ...layers.map((l) => l.outputs),
      );
      make("input", maxBatch * layers[0]!.inputs * 4);
      make("labels", maxBatch * 4);
      for (const [i, layer] of layers.entries()) {
        make(`z${i}`, maxBatch * layer.outputs * 4);
        if (layer.activation !== "none") make(`a${i}`, maxBatch * layer.outputs * 4);
      }
      make("dlogits", maxBatch * layers.at(-1)!.outputs * 4);
      make("dz", maxBatch * maxWidth * 4);
      make("dA", maxBatch * maxWidth * 4);
      make("dB", maxBatch * maxWidth * 4);
    }
    make("stats", 16);
    make("normPartials", 256 * 4);
    make("packed16", Math.ceil(P / 2) * 4);
    make("packed8", Math.ceil(P / 4) * 4);
    make("scales", T * 4);
    make("slots", T * 8);
    make("decay", Math.ceil(P / 32) * 4);
    device.queue.writeBuffer(this.buffers.decay!, 0, decayMask(this.layout));
    device.queue.writeBuffer(
      this.buffers.slots!,
      0,
      Uint32Array.from(this.layout.slots.flatMap((s) => [s.offset, s.size])),
    );
    const readBuffer = (name: string, like: GPUBuffer) => {
      this.reads[name] = device.createBuffer({
        label: `${name}.read`,
        size: like.size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    };
    for (const name of ["stats", "grads", "packed16", "packed8", "scales", "params"])
      readBuffer(name, this.buffers[name]!);
    const b = this.buffers;
    this.sgd = prepareDispatch(
      device,
      kernels.sgdMomentum,
      uniformOf([P, { f32: 0 }, { f32: 0 }, { f32: 0 }]),
      [b.grads!, b.params!, b.m1!],
      strideGroups(P, this.budget),
    );
    this.adamw = prepareDispatch(
      device,
      kernels.adamw,
      new ArrayBuffer(48),
      [b.grads!, b.params!, b.m1!, b.m2!, b.decay!, b.stats!],
      strideGroups(P, this.budget),
    );
  }

  /** Acquires a device (or takes one) and builds the engine for `spec`, batches up to maxBatch. */
  static async create(
    spec: ModelSpec,
    options: { maxBatch: number; device?: { device: GPUDevice; adapter: AdapterReport } },
  ): Promise<TrainingEngine> {
    const problems = checkModelSpec(spec);
    if (problems.length > 0) throw new Error(`cannot train this model: ${problems.join("; ")}`);
    if (spec.loss !== "softmaxCrossEntropy")
      throw new Error(`loss ${spec.loss} is not supported by the engine yet`);
    const { device, adapter } = options.device ?? (await acquireDevice());
    return new TrainingEngine(spec, device, adapter, options.maxBatch);
  }

  /** Loads parameters in the layout's contiguous order. */
  setParameters(params: Float32Array): void {
    this.assertAlive();
    if (params.length !== this.layout.size) {
      throw new Error(`expected ${this.layout.size} parameters, got ${params.length}`);
    }
    this.device.queue.writeBuffer(
      this.buffers.params!,
      0,
      params.buffer as ArrayBuffer,
      params.byteOffset,
      params.byteLength,
    );
  }

  /** Loads parameters from a wire message's tensors (Welcome or a full ParameterBroadcast). */
  setParameterTensors(tensors: readonly Tensor[]): void {
    const slots = this.layout.slots;
    if (tensors.length !== slots.length)
      throw new Error(`expected ${slots.length} parameter tensors, got ${tensors.length}`);
    const params = new Float32Array(this.layout.size);
    for (const [i, slot] of slots.entries()) {
      const t = tensors[i]!;
      if (t.name && t.name !== slot.name)
        throw new Error(`tensor ${i} is ${t.name}, expected ${slot.name}`);
      if (t.shape.join() !== slot.shape.join() || !(t.data instanceof Float32Array)) {
        throw new Error(
          `${slot.name} must be float32 of shape [${slot.shape}], got ${t.dtype} [${t.shape}]`,
        );
      }
      params.set(t.data, slot.offset);
    }
    this.setParameters(params);
    this.adamSteps = 0;
  }

  /** Reads the parameters back, in layout order. */
  async parameters(): Promise<Float32Array> {
    this.assertAlive();
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(
      this.buffers.params!,
      0,
      this.reads.params!,
      0,
      this.buffers.params!.size,
    );
    this.device.queue.submit([encoder.finish()]);
    return new Float32Array(await this.read("params", this.layout.size * 4));
  }

  /**
   * One batch's gradient, packed for the wire as `encoding` asks: one tensor per parameter,
   * named and shaped by the layout (float32, float16 bits, or int8 with its scale).
   */
  async gradient(
    inputs: Float32Array | Int32Array,
    labels: Int32Array,
    encoding: Encoding = "fp32",
    options: StepOptions = {},
  ): Promise<StepStats & { tensors: Tensor[] }> {
    const plan = this.prepare(inputs, labels, options);
    const encoder = this.device.createCommandEncoder();
    for (const buffer of plan.clears) encoder.clearBuffer(buffer);
    const pass = encoder.beginComputePass();
    for (const d of plan.step) record(pass, d);
    const extra = encoding === "fp16" ? plan.packFp16 : encoding === "int8" ? plan.packInt8 : [];
    for (const d of extra) record(pass, d);
    pass.end();
    const P = this.layout.size;
    const copy = (name: string, bytes: number) =>
      encoder.copyBufferToBuffer(
        this.buffers[name]!,
        0,
        this.reads[name]!,
        0,
        Math.ceil(bytes / 4) * 4,
      );
    copy("stats", 16);
    if (encoding === "fp32") copy("grads", P * 4);
    if (encoding === "fp16") copy("packed16", Math.ceil(P / 2) * 4);
    if (encoding === "int8") {
      copy("packed8", Math.ceil(P / 4) * 4);
      copy("scales", this.layout.slots.length * 4);
    }
    this.device.queue.submit([encoder.finish()]);
    const stats = this.toStats(await this.read("stats", 16));
    const slots = this.layout.slots;
    let tensors: Tensor[];
    if (encoding === "fp32") {
      const all = new Float32Array(await this.read("grads", P * 4));
      tensors = slots.map((s) => ({
        name: s.name,
        shape: s.shape,
        dtype: "float32",
        data: all.subarray(s.offset, s.offset + s.size),
      }));
    } else if (encoding === "fp16") {
      const bytes = await this.read("packed16", Math.ceil(P / 2) * 4);
      tensors = slots.map((s) => ({
        name: s.name,
        shape: s.shape,
        dtype: "float16",
        data: new Uint16Array(bytes, s.offset * 2, s.size),
      }));
    } else {
      const bytes = await this.read("packed8", Math.ceil(P / 4) * 4);
      const scales = new Float32Array(await this.read("scales", slots.length * 4));
      tensors = slots.map((s, i) => ({
        name: s.name,
        shape: s.shape,
        dtype: "int8",
        data: new Int8Array(bytes, s.offset, s.size),
        scale: scales[i]!,
      }));
    }
    return { ...stats, tensors };
  }

  /** One local training step: the batch's gradient, then an optimizer step on the GPU. */
  async train(
    inputs: Float32Array | Int32Array,
    labels: Int32Array,
    optimizer: LocalOptimizerConfig,
    options: StepOptions = {},
  ): Promise<StepStats> {
    const plan = this.prepare(inputs, labels, options);
    const P = this.layout.size;
    let step: Dispatch;
    if (optimizer.kind === "sgd") {
      const u = uniformOf([
        P,
        { f32: optimizer.learningRate },
        { f32: optimizer.momentum ?? 0 },
        { f32: optimizer.weightDecay ?? 0 },
      ]);
      this.device.queue.writeBuffer(this.sgd.uniform, 0, u);
      step = this.sgd;
    } else {
      const t = ++this.adamSteps;
      const beta1 = optimizer.beta1 ?? 0.9;
      const beta2 = optimizer.beta2 ?? 0.999;
      const u = uniformOf([
        P,
        { f32: optimizer.learningRate },
        { f32: beta1 },
        { f32: beta2 },
        { f32: optimizer.epsilon ?? 1e-8 },
        { f32: optimizer.weightDecay ?? 0 },
        { f32: 1 - beta1 ** t },
        { f32: 1 - beta2 ** t },
        { f32: optimizer.maxGradNorm ?? 0 },
        2, // stats[2]: the gradient's norm, from the step's grad_norm
      ]);
      this.device.queue.writeBuffer(this.adamw.uniform, 0, u);
      step = this.adamw;
    }
    const encoder = this.device.createCommandEncoder();
    for (const buffer of plan.clears) encoder.clearBuffer(buffer);
    const pass = encoder.beginComputePass();
    for (const d of plan.step) record(pass, d);
    record(pass, step);
    pass.end();
    encoder.copyBufferToBuffer(this.buffers.stats!, 0, this.reads.stats!, 0, 16);
    this.device.queue.submit([encoder.finish()]);
    return this.toStats(await this.read("stats", 16));
  }

  /** Clears the local optimizer's state (momentum, Adam moments and step count). */
  resetOptimizer(): void {
    const zeros = new Float32Array(this.layout.size);
    this.device.queue.writeBuffer(this.buffers.m1!, 0, zeros);
    this.device.queue.writeBuffer(this.buffers.m2!, 0, zeros);
    this.adamSteps = 0;
  }

  destroy(): void {
    for (const b of [...Object.values(this.buffers), ...Object.values(this.reads)]) b.destroy();
  }

  // --- internals ------------------------------------------------------------------------------

  private assertAlive(): void {
    if (this.lostInfo) {
      throw new DeviceLostError(
        `the GPU device was lost (${this.lostInfo.reason}): ${this.lostInfo.message || "no detail"}; create a new engine`,
      );
    }
  }

  private toStats(bytes: ArrayBuffer): StepStats {
    const s = new Float32Array(bytes);
    return { loss: s[0]!, correct: s[1]!, gradNorm: s[2]! };
  }

  private async read(name: string, bytes: number): Promise<ArrayBuffer> {
    const buffer = this.reads[name]!;
    try {
      await buffer.mapAsync(GPUMapMode.READ, 0, Math.ceil(bytes / 4) * 4);
    } catch (error) {
      this.assertAlive();
      throw error;
    }
    const copy = buffer.getMappedRange(0, Math.ceil(bytes / 4) * 4).slice(0, bytes);
    buffer.unmap();
    return copy;
  }

  /** Writes the batch and returns the (cached) dispatches for its size. */
  private prepare(
    inputs: Float32Array | Int32Array,
    labels: Int32Array,
    options: StepOptions,
  ): Plan {
    this.assertAlive();
    const batch = this.checkBatch(inputs, labels);
    const q = this.device.queue;
    q.writeBuffer(
      this.buffers.input!,
      0,
      inputs.buffer as ArrayBuffer,
      inputs.byteOffset,
      inputs.byteLength,
    );
    q.writeBuffer(
      this.buffers.labels!,
      0,
      labels.buffer as ArrayBuffer,
      labels.byteOffset,
      labels.byteLength,
    );
    let plan = this.plans.get(batch);
    if (!plan) {
      plan = this.buildPlan(batch);
      this.plans.set(batch, plan);
    }
    plan.setDropout?.(options.dropoutSeed ?? this.spec.seed * 1_000_003 + ++this.dropoutSteps);
    return plan;
  }

  /** The batch size (samples, or sequences for a GPT) of a well-formed batch; throws otherwise. */
  private checkBatch(inputs: Float32Array | Int32Array, labels: Int32Array): number {
    const t = this.spec.transformer;
    if (t) {
      const T = t.contextLength;
      const batch = labels.length / T;
      if (!Number.isInteger(batch) || batch < 1 || batch > this.maxBatch)
        throw new Error(`${labels.length} targets are not 1..${this.maxBatch} rows of ${T}`);
      if (!(inputs instanceof Int32Array) || inputs.length !== labels.length)
        throw new Error(`a GPT takes ${labels.length} tokens as an Int32Array`);
      for (let i = 0; i < inputs.length; i++) {
        if (
          !(
            inputs[i]! >= 0 &&
            inputs[i]! < t.vocabSize &&
            labels[i]! >= 0 &&
            labels[i]! < t.vocabSize
          )
        )
          throw new Error(
            `token ${inputs[i]} or target ${labels[i]} at ${i} outside the vocabulary`,
          );
      }
      return batch;
    }
    const batch = labels.length;
    const width = this.spec.inputShape.reduce((a, b) => a * b, 1);
    if (batch < 1 || batch > this.maxBatch)
      throw new Error(`batch of ${batch} outside 1..${this.maxBatch}`);
    if (!(inputs instanceof Float32Array) || inputs.length !== batch * width)
      throw new Error(`inputs hold ${inputs.length} values, expected ${batch} × ${width} floats`);
    return batch;
  }

  private buildPlan(B: number): Plan {
    if (this.spec.transformer) {
      const gpt = buildGptPlan(
        {
          device: this.device,
          spec: this.spec,
          layout: this.layout,
          buffers: this.buffers,
          matmul: this.matmul,
          budget: this.budget,
        },
        B,
      );
      return { batch: B, ...gpt, ...this.tail(gpt.step) };
    }
    const device = this.device;
    const b = this.buffers;
    const layers = denseLayers(this.spec);
    const slots = this.layout.slots;
    const step: Dispatch[] = [];
    const add = (...args: Parameters<typeof prepareDispatch>) =>
      step.push(prepareDispatch(...args));
    const output = (i: number) => (layers[i]!.activation === "none" ? b[`z${i}`]! : b[`a${i}`]!);
    const input = (i: number) => (i === 0 ? b.input! : output(i - 1));

    for (const [i, layer] of layers.entries()) {
      const w = slots[2 * i]!;
      const bias = slots[2 * i + 1]!;
      const n = B * layer.outputs;
      add(
        device,
        this.matmul.forward,
        uniformOf([B, layer.outputs, layer.inputs, 0, w.offset, 0, 1, bias.offset]),
        [input(i), b.params!, b[`z${i}`]!],
        matmulGroups(B, layer.outputs, this.budget),
      );
      if (layer.activation !== "none") {
        const kernel = layer.activation === "relu" ? kernels.reluForward : kernels.geluForward;
        add(
          device,
          kernel,
          uniformOf([n]),
          [b[`z${i}`]!, b[`a${i}`]!],
          strideGroups(n, this.budget),
        );
      }
    }
    const last = layers.length - 1;
    add(
      device,
      kernels.softmaxXent,
      uniformOf([B, layers[last]!.outputs, 0, 0]),
      [output(last), b.labels!, b.dlogits!, b.stats!],
      [1, 1, 1],
    );

    let dIn = b.dlogits!;
    for (let i = last; i >= 0; i--) {
      const layer = layers[i]!;
      const w = slots[2 * i]!;
      const bias = slots[2 * i + 1]!;
      const n = B * layer.outputs;
      let dz = dIn;
      if (layer.activation !== "none") {
        const kernel = layer.activation === "relu" ? kernels.reluBackward : kernels.geluBackward;
        add(
          device,
          kernel,
          uniformOf([n]),
          [b[`z${i}`]!, dIn, b.dz!],
          strideGroups(n, this.budget),
        );
        dz = b.dz!;
      }
      add(
        device,
        this.matmul.backwardWeight,
        uniformOf([layer.inputs, layer.outputs, B, 0, 0, w.offset, 0, 0]),
        [input(i), dz, b.grads!],
        matmulGroups(layer.inputs, layer.outputs, this.budget),
      );
      add(
        device,
        kernels.biasBackward,
        uniformOf([B, layer.outputs, bias.offset, 0]),
        [dz, b.grads!],
        [Math.ceil(layer.outputs / 64), 1, 1],
      );
      if (i > 0) {
        const dOut = dIn === b.dA ? b.dB! : b.dA!;
        add(
          device,
          this.matmul.backwardInput,
          uniformOf([B, layer.inputs, layer.outputs, 0, w.offset, 0, 0, 0]),
          [dz, b.params!, dOut],
          matmulGroups(B, layer.inputs, this.budget),
        );
        dIn = dOut;
      }
    }
    return { batch: B, step, clears: [], ...this.tail(step) };
  }

  /** Appends the gradient norm to a step, and prepares the packers of its update. */
  private tail(step: Dispatch[]): { packFp16: Dispatch[]; packInt8: Dispatch[] } {
    const device = this.device;
    const b = this.buffers;
    const slots = this.layout.slots;
    const P = this.layout.size;
    const add = (...args: Parameters<typeof prepareDispatch>) =>
      step.push(prepareDispatch(...args));
    const groups = reductionGroups(P);
    const norm = uniformOf([P, groups, 2, 0]);
    add(
      device,
      kernels.gradNormPartial,
      norm,
      [b.grads!, b.normPartials!, b.stats!],
      [groups, 1, 1],
    );
    add(device, kernels.gradNormFinish, norm, [b.grads!, b.normPartials!, b.stats!], [1, 1, 1]);

    const packFp16 = [
      prepareDispatch(
        device,
        kernels.packFp16,
        uniformOf([P]),
        [b.grads!, b.packed16!],
        strideGroups(Math.ceil(P / 2), this.budget),
      ),
    ];
    const int8 = uniformOf([P, slots.length, 0, 0]);
    const packInt8 = [
      prepareDispatch(
        device,
        kernels.packInt8Absmax,
        int8,
        [b.grads!, b.slots!, b.scales!, b.packed8!],
        [slots.length, 1, 1],
      ),
      prepareDispatch(
        device,
        kernels.packInt8Quantize,
        int8,
        [b.grads!, b.slots!, b.scales!, b.packed8!],
        strideGroups(Math.ceil(P / 4), this.budget),
      ),
    ];
    return { packFp16, packInt8 };
  }
}
