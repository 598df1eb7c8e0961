// pack_fp16: the gradient as IEEE binary16 for the wire: out[w] holds elements 2w (low half) and
// 2w+1 (high half) of grad[0..n), via pack2x16float; an odd n leaves the last high half 0.
// Each tensor of the layout is then a Uint16Array view at its element offset.
// Rounding of f32 → f16 is the implementation's (WGSL leaves it so): within one half-ulp of the
// codec's round-to-nearest-even fp32ToFp16. Workgroup 256, grid-stride over words.
// CPU reference: fp32ToFp16 in shared/src/wire/quantize.ts.

struct Dims { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let words = (dims.n + 1u) / 2u;
  for (var w = gid.x; w < words; w += groups.x * 256u) {
    let i = 2u * w;
    let hi = select(0.0, grad[i + 1u], i + 1u < dims.n);
    out[w] = pack2x16float(vec2<f32>(grad[i], hi));
  }
}
