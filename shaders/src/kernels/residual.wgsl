// residual: out = a + dropout(b) over n elements: a block's branch (attention or MLP output, b)
// joins the residual stream (a). Its backward needs no kernel of its own: the stream's gradient
// passes to a unchanged (the LayerNorm backward adds into it) and to b through dropout.wgsl.
// random.wgsl is prepended. Workgroup 256, grid-stride. CPU reference: residualForward.

struct Dims { n: u32, key: u32, threshold: u32, scale: f32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < dims.n; i += groups.x * 256u) {
    out[i] = a[i] + b[i] * dropoutScale(i, dims.key, dims.threshold, dims.scale);
  }
}
