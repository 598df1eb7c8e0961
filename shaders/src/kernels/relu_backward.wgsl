// relu_backward: dinp[i] = dout[i] if inp[i] > 0 else 0, for i < n (inp: the pre-activation).
// Workgroup 256, grid-stride. CPU reference: reluBackward.

struct Dims { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dinp: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < dims.n; i += groups.x * 256u) {
    dinp[i] = select(0.0, dout[i], inp[i] > 0.0);
  }
}
