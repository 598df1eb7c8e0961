// relu_forward: out[i] = max(inp[i], 0) for i < n. The input (pre-activation) is kept for the
// backward pass. Workgroup 256, grid-stride. CPU reference: reluForward.

struct Dims { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < dims.n; i += groups.x * 256u) { out[i] = max(inp[i], 0.0); }
}
