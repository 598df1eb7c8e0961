// gelu_backward: dinp[i] = dout[i] · GELU'(x), x = inp[i] (the pre-activation), with
// GELU'(x) = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t = tanh(√(2/π)(x + 0.044715x³)).
// Workgroup 256, grid-stride. CPU reference: geluBackward.

struct Dims { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dinp: array<f32>;

const SCALE = 0.7978845608028654;

fn tanh_stable(u: f32) -> f32 {
  let e = exp(-2.0 * clamp(abs(u), 0.0, 20.0));
  return sign(u) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < dims.n; i += groups.x * 256u) {
    let x = inp[i];
    let t = tanh_stable(SCALE * (x + 0.044715 * x * x * x));
    let du = SCALE * (1.0 + 3.0 * 0.044715 * x * x);
    dinp[i] = (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du) * dout[i];
  }
}
