// adamw: one AdamW step over all n parameters, in place, at step t (from 1), after clipping the
// gradient to a global norm:
//   g = grad · min(1, maxNorm / ‖grad‖)   (‖grad‖ = stats[normIndex], from grad_norm; maxNorm 0: off)
//   m = β1·m + (1−β1)·g;   v = β2·v + (1−β2)·g²
//   p = p − lr·( (m / c1) / (√(v / c2) + ε) + wd·p ),   c1 = 1 − β1ᵗ, c2 = 1 − β2ᵗ (given)
// wd applies where the parameter's bit in `decay` is set (matrices; not biases, norms or
// embeddings: model-spec's decayMask). Workgroup 256, grid-stride.
// CPU reference: clipByGlobalNorm, then adamwStep.

struct Hyper {
  n: u32, learningRate: f32, beta1: f32, beta2: f32,
  epsilon: f32, weightDecay: f32, correction1: f32, correction2: f32,
  maxNorm: f32, normIndex: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> h: Hyper;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read> decay: array<u32>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let norm = stats[h.normIndex];
  let clip = select(1.0, h.maxNorm / norm, h.maxNorm > 0.0 && norm > h.maxNorm);
  for (var i = gid.x; i < h.n; i += groups.x * 256u) {
    let g = grad[i] * clip;
    let a = h.beta1 * m1[i] + (1.0 - h.beta1) * g;
    let b = h.beta2 * m2[i] + (1.0 - h.beta2) * g * g;
    m1[i] = a;
    m2[i] = b;
    let wd = select(0.0, h.weightDecay, ((decay[i >> 5u] >> (i & 31u)) & 1u) == 1u);
    let step = (a / h.correction1) / (sqrt(b / h.correction2) + h.epsilon);
    params[i] = params[i] - h.learningRate * (step + wd * params[i]);
  }
}
