// A contributor without a browser: a Contributor (the shared protocol client) whose Trainer is
// the float64 CPU reference. `pnpm pangea worker <url>` runs it over a WebSocket; the tests run
// many of them in one process. `attacks` makes it a misbehaving contributor for the adversarial
// tests.

import { adamwStep, batchLossAndGradient, measureHeldOut } from "@pangea/shaders/reference";
import {
  type Batch,
  decayMask,
  dropoutSeedOf,
  innerBatch,
  type ModelSpec,
  parameterLayout,
  type Tensor,
  type TrainingConfig,
} from "@pangea/shared";
import {
  Contributor,
  type ContributorOptions,
  type HeldOutEvaluator,
  type Lease,
  type Trainer,
  type WorkResult,
} from "@pangea/shared/client";
import type { Collusion } from "./collusion.ts";

/**
 * Misbehaviours. Refused ones: a NaN, a wrong shape, someone else's lease. Accepted ones that the
 * aggregation must absorb: sign-flipped ×10. Freeloaders, whose updates are well-formed but not
 * computed on their lease (only redundancy can tell): "stale" sends its first update again
 * every time, "random" sends noise with an honest update's norm.
 */
export type Attack = "signFlip" | "nan" | "wrongShape" | "foreignLease" | "stale" | "random";

export interface HeadlessWorkerOptions extends ContributorOptions {
  /** Misbehaviours cycled through, one per update (honest when absent). */
  attacks?: Attack[];
  /** Sends what this group of colluders forges from its honest updates (ALIE, IPM) instead. */
  collusion?: Collusion;
  /** Reports evaluation leases' losses 10% low (a session flattering the run). */
  lieAboutEvaluation?: boolean;
  /** Computes the updates (the GPU engine through Dawn); the CPU reference when absent. */
  trainer?: Trainer;
}

/** Gradients (or local-SGD deltas) from the CPU reference, synchronously. */
export class CpuTrainer implements Trainer {
  readonly client = {
    kind: "headless",
    adapter: "CPU reference (float64)",
    softwareFallback: true,
    userAgent: "pangea-worker",
  };
  private model: ModelSpec | undefined;
  private params: Float32Array | undefined;
  private attackIndex = 0;
  /** A freeloader's first (and only) computed update. */
  private kept: Float32Array | undefined;
  private noise = 0x2545f491;

  constructor(
    private readonly attacks: readonly Attack[] = [],
    private readonly collusion?: Collusion,
  ) {}

  prepare(model: ModelSpec): void {
    this.model = model;
  }

  setParameters(_version: number, tensors: readonly Tensor[]): void {
    const layout = parameterLayout(this.model!);
    const params = new Float32Array(layout.size);
    for (const [i, slot] of layout.slots.entries())
      params.set(tensors[i]!.data as Float32Array, slot.offset);
    this.params = params;
  }

  work(lease: Lease, batch: Batch, training: TrainingConfig): WorkResult {
    const model = this.model!;
    const start = this.params!;
    let update: Float32Array;
    let loss: number;
    let correct: number;
    if (training.strategy === "localSgd") {
      // DiLoCo's inner loop: H steps of the run's local optimizer from the leased version, each
      // on its own part of the lease's batch.
      const local = Float64Array.from(start);
      const step = localStep(training, model, local.length);
      loss = 0;
      correct = 0;
      for (let s = 0; s < lease.innerSteps; s++) {
        const r = batchLossAndGradient(model, local, innerBatch(batch, s, lease.innerSteps), {
          dropoutSeed: dropoutSeedOf(lease.batch, s),
        });
        if (s === 0) {
          loss = r.loss;
          correct = r.correct;
        }
        step(local, r.grad);
      }
      update = new Float32Array(local.length);
      for (let i = 0; i < local.length; i++) update[i] = start[i]! - local[i]!;
    } else {
      const r = batchLossAndGradient(model, start, batch, {
        dropoutSeed: dropoutSeedOf(lease.batch),
      });
      update = Float32Array.from(r.grad);
      loss = r.loss;
      correct = r.correct;
    }
    if (this.collusion) update = this.collusion.forge(update);
    const layout = parameterLayout(model);
    let tensors: Tensor[] = layout.slots.map((slot) => ({
      shape: slot.shape,
      dtype: "float32",
      name: slot.name,
      data: update.subarray(slot.offset, slot.offset + slot.size),
    }));
    let leaseId: number | undefined;
    if (this.attacks.length > 0) {
      const attack = this.attacks[this.attackIndex++ % this.attacks.length]!;
      if (attack === "signFlip")
        for (let i = 0; i < update.length; i++) update[i] = -10 * update[i]!;
      if (attack === "nan") update[Math.floor(update.length / 2)] = Number.NaN;
      if (attack === "wrongShape") tensors = tensors.slice(0, -1);
      if (attack === "foreignLease") leaseId = lease.leaseId - 1;
      if (attack === "stale") {
        this.kept ??= update.slice();
        update.set(this.kept);
      }
      if (attack === "random") {
        // Noise as large as the honest update it replaces: within every bound the coordinator sets.
        let squares = 0;
        for (let i = 0; i < update.length; i++) squares += update[i]! * update[i]!;
        const scale = Math.sqrt(squares / update.length);
        for (let i = 0; i < update.length; i++) update[i] = scale * this.gaussian();
      }
    }
    return { tensors, encoding: "fp32", loss, correct, leaseId };
  }

  /** A standard normal draw (Box–Muller over xorshift32): a freeloader's noise, seeded. */
  private gaussian(): number {
    const next = () => {
      this.noise ^= this.noise << 13;
      this.noise ^= this.noise >>> 17;
      this.noise ^= this.noise << 5;
      return ((this.noise >>> 0) + 1) / 4294967297;
    };
    return Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  }
}

/** One step of the run's local optimizer, in place, with its state kept between calls. */
function localStep(
  training: TrainingConfig,
  model: ModelSpec,
  size: number,
): (params: Float64Array, grad: Float64Array) => void {
  const lr = training.learningRate;
  if (training.localOptimizer === "adamw") {
    const m1 = new Float64Array(size);
    const m2 = new Float64Array(size);
    const decay = decayMask(parameterLayout(model));
    let t = 0;
    return (params, grad) =>
      adamwStep(
        params,
        grad,
        m1,
        m2,
        {
          learningRate: lr,
          beta1: 0.9,
          beta2: 0.999,
          epsilon: 1e-8,
          weightDecay: training.weightDecay,
          step: ++t,
        },
        decay,
      );
  }
  const mu = training.localOptimizer === "momentum" ? training.momentum : 0;
  const velocity = new Float64Array(size);
  return (params, grad) => {
    for (let i = 0; i < params.length; i++) {
      velocity[i] = mu * velocity[i]! + grad[i]! + training.weightDecay * params[i]!;
      params[i]! -= lr * velocity[i]!;
    }
  };
}

export class HeadlessWorker extends Contributor {
  constructor(options: HeadlessWorkerOptions = {}) {
    // Every headless worker takes evaluation leases (with the CPU reference) unless told not to.
    const honest: HeldOutEvaluator = measureHeldOut;
    const evaluate: HeldOutEvaluator = options.lieAboutEvaluation
      ? (model, parameters, shard, part) => {
          const m = measureHeldOut(model, parameters, shard, part);
          return { ...m, loss: m.loss * 0.9 };
        }
      : honest;
    super(options.trainer ?? new CpuTrainer(options.attacks, options.collusion), {
      evaluate,
      ...options,
    });
  }
}
