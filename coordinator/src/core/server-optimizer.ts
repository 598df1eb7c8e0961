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

/**
 * One step, in place on `params` and `state`, with `update` the aggregate for this version:
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
): void {
  if (update.length !== params.length) throw new Error("update and parameters differ in size");
  const lr = learningRateAt(config, state.step);
  state.step++;
  const { momentum: mu, weightDecay } = config;
  const m = state.m;
  const wdOf = (i: number) => ((decay[i >>> 5]! >>> (i & 31)) & 1 ? weightDecay : 0);
  if (config.kind === "sgd") {
    for (let i = 0; i < params.length; i++) {
      const g = update[i]! + wdOf(i) * params[i]!;
      const v = mu * m[i]! + g;
      m[i] = v;
      params[i]! -= lr * (config.nesterov ? g + mu * v : v);
    }
    return;
  }
  const b2 = config.beta2;
  const c1 = 1 - mu ** state.step;
  const c2 = 1 - b2 ** state.step;
  const v = state.v;
  for (let i = 0; i < params.length; i++) {
    const g = update[i]!;
    const mi = mu * m[i]! + (1 - mu) * g;
    const vi = b2 * v[i]! + (1 - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i]! -= lr * (mi / c1 / (Math.sqrt(vi / c2) + config.epsilon) + wdOf(i) * params[i]!);
  }
}
