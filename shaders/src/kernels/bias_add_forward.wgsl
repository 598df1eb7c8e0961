// bias_add_forward: out[i,j] = inp[i,j] + bias[j] for i < M, j < N, in place on `out`
// (which holds inp). Row-major [M,N]; bias read at an element offset into the parameters.
// Workgroup 256, grid-stride over M·N. CPU reference: the bias term of matmulForward.

struct Dims { M: u32, N: u32, offsetBias: u32, pad: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = dims.M * dims.N;
  for (var i = gid.x; i < total; i += groups.x * 256u) {
    out[i] = out[i] + bias[dims.offsetBias + i % dims.N];
  }
}
