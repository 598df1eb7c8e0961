// dropout: out[i] = inp[i] · dropoutScale(i) over n elements, the same kernel for the forward
// (activations) and the backward (their gradients, with the same key). random.wgsl is prepended.
// Workgroup 256, grid-stride. CPU reference: dropoutForward.

struct Dims { n: u32, key: u32, threshold: u32, scale: f32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < dims.n; i += groups.x * 256u) {
    out[i] = inp[i] * dropoutScale(i, dims.key, dims.threshold, dims.scale);
  }
}
