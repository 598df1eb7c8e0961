// gelu_forward: out[i] = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), x = inp[i], i < n (the tanh
// approximation). tanh is written out through exp with a clamped argument: WGSL's tanh may be
// inexact or overflow for large |u| on some backends. Workgroup 256, grid-stride.
// CPU reference: geluForward.

struct Dims { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const SCALE = 0.7978845608028654; // √(2/π)

fn tanh_stable(u: f32) -> f32 {
  let e = exp(-2.0 * clamp(abs(u), 0.0, 20.0));
  return sign(u) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < dims.n; i += groups.x * 256u) {
    let x = inp[i];
    out[i] = 0.5 * x * (1.0 + tanh_stable(SCALE * (x + 0.044715 * x * x * x)));
  }
}
