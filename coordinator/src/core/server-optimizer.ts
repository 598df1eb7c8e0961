// The coordinator's optimizer: applies one aggregated update per version to the parameters.
// State (momentum, Adam moments, the step count) is plain Float32Arrays so the Store can keep it
// with each committed version.
import type { ServerOptimizerConfig } from "./run-config.ts";

export interface OptimizerState {
  step: number;
  /** sgd: velocity. adamw: first moment. */
  m: Float32Array;
  /** adamw: second moment (empty for sgd). */
  v: Float32Array;
}

export function initialOptimizerState(config: ServerOptimizerConfig, size: number): OptimizerState {
  return {
    step: 0,
    m: new Float32Array(size),
    v: new Float32Array(config.kind === "adamw" ? size : 0),
  };
}

/**
 * The learning rate at `step` (counting from 0): linear warm-up over warmupVersions, then a
 * cosine from learningRate to minLearningRate over decayVersions (constant when that is 0).
 */
export function learningRateAt(config: ServerOptimizerConfig, step: number): number {
  const { learningRate: lr, warmupVersions: warm, decayVersions: decay } = config;
  if (warm > 0 && step < warm) return (lr * (step + 1)) / warm;
  if (decay <= 0) return lr;
  const progress = Math.min(1, (step - warm) / decay);
  return (
    config.minLearningRate +
    0.5 * (lr - config.minLearningRate) * (1 + Math.cos(Math.PI * progress))
  );
}

/** Where a step writes the parameters and moments after it; absent, it writes in place. */
export interface StepTarget {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * One step, with `update` the aggregate for this version, reading `params` and `state` and
 * writing `into` (in place when absent); `state.step` counts it. Returns whether every new
 * parameter is finite (checked in the same pass), so that a caller writing into spare arrays
 * can throw a bad step away by not swapping them in.
 *   sgd     v ← μv + g + λp;   p ← p − η·(Nesterov ? g + λp + μv : v)
 *   adamw   m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  p ← p − η·(m̂/(√v̂+ε) + λp)
 * For local SGD / DiLoCo the "gradient" is the averaged parameter delta (before − after), and
 * the run's optimizer is the outer Nesterov SGD. Weight decay λ applies where `decay` has the
 * parameter's bit (model-spec's decayMask: matrices, not biases, norms or embeddings), as in the
 * tab's AdamW.
 */
export function applyUpdate(
  config: ServerOptimizerConfig,
  params: Float32Array,
  state: OptimizerState,
  update: Float32Array,
  decay: Uint32Array,
  into: StepTarget = { params, m: state.m, v: state.v },
): boolean {
  if (update.length !== params.length) throw new Error("update and parameters differ in size");
  const lr = learningRateAt(config, state.step);
  state.step++;
  // The loops are plain functions of plain arguments (a closure over `decay` and the config
  // kept V8 loading them through a context in the loop), with the bias corrections folded into
  // constants: together 2.0 → 1.0 ms per step over the MNIST model's 101,770 parameters.
  if (config.kind === "sgd")
    return sgdStep(
      params,
      state.m,
      update,
      decay,
      into,
      lr,
      config.momentum,
      config.weightDecay,
      config.nesterov,
    );
  const c1 = 1 - config.momentum ** state.step;
  const c2 = 1 - config.beta2 ** state.step;
  return adamwStep(
    params,
    state.m,
    state.v,
    update,
    decay,
    into,
    lr,
    config.momentum,
    config.beta2,
    c1,
    c2,
    config.epsilon,
    config.weightDecay,
  );
}

// In both loops, x·0 is 0 for every finite x and NaN otherwise: one sum tells whether every new
// parameter is finite (as float32, hence the fround).

function sgdStep(
  params: Float32Array,
  m: Float32Array,
  update: Float32Array,
  decay: Uint32Array,
  into: StepTarget,
  lr: number,
  mu: number,
  weightDecay: number,
  nesterov: boolean,
): boolean {
  const out = into.params;
  const outM = into.m;
  let finite = 0;
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    const wd = (decay[i >>> 5]! >>> (i & 31)) & 1 ? weightDecay : 0;
    const g = update[i]! + wd * p;
    const v = mu * m[i]! + g;
    outM[i] = v;
    const next = p - lr * (nesterov ? g + mu * v : v);
    out[i] = next;
    finite += Math.fround(next) * 0;
  }
  return finite === 0;
}

function adamwStep(
  params: Float32Array,
  m: Float32Array,
  v: Float32Array,
  update: Float32Array,
  decay: Uint32Array,
  into: StepTarget,
  lr: number,
  mu: number,
  b2: number,
  c1: number,
  c2: number,
  eps: number,
  weightDecay: number,
): boolean {
  const out = into.params;
  const outM = into.m;
  const outV = into.v;
  // m̂/(√v̂+ε) with the bias corrections folded into constants: lr·m/c₁ / (√v/√c₂ + ε).
  const k1 = 1 - mu;
  const k2 = 1 - b2;
  const rate = lr / c1;
  const root = 1 / Math.sqrt(c2);
  let finite = 0;
  for (let i = 0; i < params.length; i++) {
    const g = update[i]!;
    const p = params[i]!;
    const mi = mu * m[i]! + k1 * g;
    const vi = b2 * v[i]! + k2 * g * g;
    outM[i] = mi;
    outV[i] = vi;
    const wd = (decay[i >>> 5]! >>> (i & 31)) & 1 ? weightDecay : 0;
    const next = p - ((rate * mi) / (Math.sqrt(vi) * root + eps) + lr * wd * p);
    out[i] = next;
    finite += Math.fround(next) * 0;
  }
  return finite === 0;
}
