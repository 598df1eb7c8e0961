// sgd_momentum: one local optimizer step over all n parameters, in place:
//   v = μ·v + g;   p = p − lr·(v + wd·p)          (decoupled weight decay)
// Parameters, gradients and velocity share one contiguous layout. Workgroup 256, grid-stride.
// CPU reference: sgdMomentumStep.

struct Hyper { n: u32, learningRate: f32, momentum: f32, weightDecay: f32 }

@group(0) @binding(0) var<uniform> h: Hyper;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < h.n; i += groups.x * 256u) {
    let v = fma(h.momentum, velocity[i], grad[i]);
    velocity[i] = v;
    params[i] = params[i] - h.learningRate * (v + h.weightDecay * params[i]);
  }
}
