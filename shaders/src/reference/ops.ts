// The CPU reference of every kernel, in float64: the truth the WGSL kernels are tested against,
// and what the coordinator evaluates models with. Plain loops, written for clarity, not speed.
// Matrices are row-major. Names follow llm.c: `dout` is the gradient of the loss with respect to
// an op's output, `dinp` and `dweight` with respect to its input and weight.

export type Floats = Float32Array | Float64Array;

/** out[m,n] = inp[m,k] · weight[k,n] (+ bias[n]). Reference of matmul_forward.wgsl. */
export function matmulForward(
  inp: Floats,
  weight: Floats,
  bias: Floats | null,
  m: number,
  k: number,
  n: number,
): Float64Array {
  // Row by row, walking weight's rows contiguously; each out[i,j] still sums bias, then p in
  // order, exactly as the textbook loop does. A zero input adds nothing and is skipped (MNIST's
  // pixels are mostly zero), which assumes finite weights: the coordinator validates them.
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    if (bias) for (let j = 0; j < n; j++) out[row + j] = bias[j]!;
    for (let p = 0; p < k; p++) {
      const a = inp[i * k + p]!;
      if (a === 0) continue;
      const w = p * n;
      for (let j = 0; j < n; j++) out[row + j]! += a * weight[w + j]!;
    }
  }
  return out;
}

/** dinp[m,k] = dout[m,n] · weight[k,n]ᵀ. Reference of matmul_backward_input.wgsl. */
export function matmulBackwardInput(
  dout: Floats,
  weight: Floats,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const dinp = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += dout[i * n + j]! * weight[p * n + j]!;
      dinp[i * k + p] = sum;
    }
  }
  return dinp;
}

/** dweight[k,n] = inp[m,k]ᵀ · dout[m,n]. Reference of matmul_backward_weight.wgsl. */
export function matmulBackwardWeight(
  inp: Floats,
  dout: Floats,
  m: number,
  k: number,
  n: number,
): Float64Array {
  // Sample by sample (the same order of summation over i for every element), contiguous rows.
  const dweight = new Float64Array(k * n);
  for (let i = 0; i < m; i++) {
    const d = i * n;
    for (let p = 0; p < k; p++) {
      const a = inp[i * k + p]!;
      if (a === 0) continue;
      const w = p * n;
      for (let j = 0; j < n; j++) dweight[w + j]! += a * dout[d + j]!;
    }
  }
  return dweight;
}

/** dbias[n] = Σ_i dout[i,n]. Reference of bias_backward.wgsl. */
export function biasBackward(dout: Floats, m: number, n: number): Float64Array {
  const dbias = new Float64Array(n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) dbias[j]! += dout[i * n + j]!;
  return dbias;
}

/** max(x, 0). Reference of relu_forward.wgsl. */
export function reluForward(inp: Floats): Float64Array {
  return Float64Array.from(inp, (x) => (x > 0 ? x : 0));
}

/** dinp = dout where inp > 0, else 0. Reference of relu_backward.wgsl. */
export function reluBackward(inp: Floats, dout: Floats): Float64Array {
  return Float64Array.from(inp, (x, i) => (x > 0 ? dout[i]! : 0));
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Reference of gelu_forward.wgsl. */
export function geluForward(inp: Floats): Float64Array {
  return Float64Array.from(
    inp,
    (x) => 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + 0.044715 * x * x * x))),
  );
}

/** d GELU(x)/dx · dout. Reference of gelu_backward.wgsl. */
export function geluBackward(inp: Floats, dout: Floats): Float64Array {
  return Float64Array.from(inp, (x, i) => {
    const u = GELU_SCALE * (x + 0.044715 * x * x * x);
    const t = Math.tanh(u);
    const du = GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    return (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du) * dout[i]!;
  });
}

/**
 * Softmax cross-entropy over rows of logits[m,c] against integer labels: the mean loss, the count
 * of rows whose arg-max is the label, and dlogits = (softmax - onehot) / m.
 * Reference of softmax_xent.wgsl.
 */
export function softmaxCrossEntropy(
  logits: Floats,
  labels: Int32Array,
  m: number,
  c: number,
): { loss: number; correct: number; dlogits: Float64Array } {
  const dlogits = new Float64Array(m * c);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < m; i++) {
    let max = Number.NEGATIVE_INFINITY;
    let arg = 0;
    for (let j = 0; j < c; j++) {
      const v = logits[i * c + j]!;
      if (v > max) {
        max = v;
        arg = j;
      }
    }
    let sum = 0;
    for (let j = 0; j < c; j++) sum += Math.exp(logits[i * c + j]! - max);
    const label = labels[i]!;
    loss += Math.log(sum) - (logits[i * c + label]! - max);
    if (arg === label) correct++;
    for (let j = 0; j < c; j++) {
      const p = Math.exp(logits[i * c + j]! - max) / sum;
      dlogits[i * c + j] = (p - (j === label ? 1 : 0)) / m;
    }
  }
  return { loss: loss / m, correct, dlogits };
}

/** √(Σ g²). Reference of grad_norm.wgsl. */
export function gradNorm(grad: Floats): number {
  let sum = 0;
  for (const g of grad) sum += g * g;
  return Math.sqrt(sum);
}

/**
 * SGD with momentum and decoupled weight decay, in place:
 * v = μ·v + g;  p = p − lr·(v + wd·p). Reference of sgd_momentum.wgsl.
 */
export function sgdMomentumStep(
  params: Floats,
  grad: Floats,
  velocity: Floats,
  h: { learningRate: number; momentum: number; weightDecay: number },
): void {
  for (let i = 0; i < params.length; i++) {
    const v = h.momentum * velocity[i]! + grad[i]!;
    velocity[i] = v;
    params[i] = params[i]! - h.learningRate * (v + h.weightDecay * params[i]!);
  }
}

/** g · min(1, maxNorm / ‖g‖), in place; the norm before clipping is returned. 0: no clipping. */
export function clipByGlobalNorm(grad: Floats, maxNorm: number): number {
  const norm = gradNorm(grad);
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / norm;
    for (let i = 0; i < grad.length; i++) grad[i]! *= scale;
  }
  return norm;
}

/**
 * AdamW, in place, at step t (from 1): m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
 * p = p − lr·( m̂ / (√v̂ + ε) + wd·p ) with m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ). With `decay` (a bit
 * per parameter, model-spec's decayMask) the wd term applies only where its bit is set.
 * Reference of adamw.wgsl.
 */
export function adamwStep(
  params: Floats,
  grad: Floats,
  m1: Floats,
  m2: Floats,
  h: {
    learningRate: number;
    beta1: number;
    beta2: number;
    epsilon: number;
    weightDecay: number;
    step: number;
  },
  decay?: Uint32Array,
): void {
  const c1 = 1 - h.beta1 ** h.step;
  const c2 = 1 - h.beta2 ** h.step;
  for (let i = 0; i < params.length; i++) {
    const wd = !decay || (decay[i >>> 5]! >>> (i & 31)) & 1 ? h.weightDecay : 0;
    const g = grad[i]!;
    const a = h.beta1 * m1[i]! + (1 - h.beta1) * g;
    const b = h.beta2 * m2[i]! + (1 - h.beta2) * g * g;
    m1[i] = a;
    m2[i] = b;
    params[i] =
      params[i]! - h.learningRate * (a / c1 / (Math.sqrt(b / c2) + h.epsilon) + wd * params[i]!);
  }
}
