// grad_norm: the L2 norm of a gradient, ‖g‖ = √(Σ g[i]²) over i < n, in two passes:
//   partial: workgroup w (of G, G ≤ 256) sums g[i]² over i = w·256 + tid, stepping by G·256, then
//            reduces its 256 sums in workgroup memory into partials[w];
//   finish:  one workgroup sums partials[0..G) and writes out[0] = √sum.
// Both reductions are trees in a fixed order, so the result is deterministic.
// Dispatch: partial (G, 1, 1), finish (1, 1, 1). CPU reference: gradNorm.

struct Dims { n: u32, groups: u32, outIndex: u32, pad: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, 256>;

fn reduce(tid: u32) {
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (tid < stride) { part[tid] += part[tid + stride]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  var sum = 0.0;
  for (var i = wid.x * 256u + lid.x; i < dims.n; i += dims.groups * 256u) {
    let g = grad[i];
    sum = fma(g, g, sum);
  }
  part[lid.x] = sum;
  reduce(lid.x);
  if (lid.x == 0u) { partials[wid.x] = part[0]; }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_id) lid: vec3<u32>) {
  part[lid.x] = select(0.0, partials[lid.x], lid.x < dims.groups);
  reduce(lid.x);
  if (lid.x == 0u) { out[dims.outIndex] = sqrt(part[0]); }
}
