// The GPU Trainer, in a tab or in `pangea worker --gpu` (Dawn for Node): a lease's batch goes
// through our WGSL kernels. Gradients come back packed as the run asks (fp32, fp16 or int8);
// local SGD runs its inner steps on the GPU and sends the parameter delta.
import {
  type Batch,
  dropoutSeedOf,
  innerBatch,
  type ModelSpec,
  type Tensor,
  type TrainingConfig,
} from "@pangea/shared";
import type { Lease, Trainer, WorkResult } from "@pangea/shared/client";
import { TrainingEngine } from "./engine.ts";
import type { AdapterReport } from "./gpu.ts";

export class GpuTrainer implements Trainer {
  readonly client;
  private engine: TrainingEngine | undefined;
  private modelKey = "";

  constructor(
    private readonly gpu: { device: GPUDevice; adapter: AdapterReport },
    userAgent: string,
    kind: "browser" | "headless" = "browser",
  ) {
    this.client = {
      kind,
      adapter: gpu.adapter.description,
      softwareFallback: gpu.adapter.softwareFallback,
      userAgent,
    };
  }

  async prepare(model: ModelSpec, training: TrainingConfig): Promise<void> {
    const key = JSON.stringify([model, training]);
    if (this.engine && key === this.modelKey) return;
    this.engine?.destroy();
    this.engine = await TrainingEngine.create(model, {
      maxBatch: training.batchSize,
      device: this.gpu,
    });
    this.modelKey = key;
  }

  setParameters(_version: number, tensors: readonly Tensor[]): void {
    this.engine!.setParameterTensors(tensors);
  }

  async work(lease: Lease, batch: Batch, training: TrainingConfig): Promise<WorkResult> {
    const engine = this.engine!;
    const { inputs, labels } = batch;
    if (training.strategy !== "localSgd") {
      const r = await engine.gradient(inputs, labels, training.updateEncoding, {
        dropoutSeed: dropoutSeedOf(lease.batch),
      });
      return {
        tensors: r.tensors,
        encoding: training.updateEncoding,
        loss: r.loss,
        correct: r.correct,
      };
    }
    // Local SGD: H steps from the leased version, then the delta start − end, and the engine
    // back at the start (the next lease starts from the coordinator's parameters, not ours).
    // The inner optimizer starts afresh each lease (as the CPU trainer's does): keeping AdamW's
    // moments from lease to lease, as DiLoCo's workers do, did worse here (bench:diloco, H=32:
    // 4.8% over synchronous against 3.3%).
    const start = await engine.parameters();
    engine.resetOptimizer();
    const optimizer =
      training.localOptimizer === "adamw"
        ? {
            kind: "adamw" as const,
            learningRate: training.learningRate,
            weightDecay: training.weightDecay,
          }
        : {
            kind: "sgd" as const,
            learningRate: training.learningRate,
            momentum: training.localOptimizer === "momentum" ? training.momentum : 0,
            weightDecay: training.weightDecay,
          };
    let first = { loss: 0, correct: 0 };
    for (let s = 0; s < Math.max(1, lease.innerSteps); s++) {
      // Each inner step on its own part of the lease's batch (a batch per step).
      const part = innerBatch(batch, s, lease.innerSteps);
      const stats = await engine.train(part.inputs, part.labels, optimizer, {
        dropoutSeed: dropoutSeedOf(lease.batch, s),
      });
      if (s === 0) first = stats;
    }
    const end = await engine.parameters();
    engine.setParameters(start);
    const delta = new Float32Array(start.length);
    for (let i = 0; i < delta.length; i++) delta[i] = start[i]! - end[i]!;
    const tensors: Tensor[] = engine.layout.slots.map((s) => ({
      name: s.name,
      shape: s.shape,
      dtype: "float32",
      data: delta.subarray(s.offset, s.offset + s.size),
    }));
    return { tensors, encoding: "fp32", loss: first.loss, correct: first.correct };
  }
}
