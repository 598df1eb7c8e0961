// pack_int8: the gradient as int8 with one scale per tensor, for the wire:
//   absmax:   workgroup t reduces max|g| over tensor t (elements [offset_t, offset_t + size_t))
//             and writes scales[t] = max / 127;
//   quantize: q[i] = clamp(round(g[i] / scale_t), −127, 127) (0 where the scale is 0), packed
//             four to a u32 little-endian word: out[w] holds elements 4w … 4w+3 of the whole
//             layout, each looked up in the tensor table for its scale.
// Each tensor is then an Int8Array view at its element offset. Workgroup 256.
// Dispatch: absmax (T, 1, 1), quantize (grid-stride). CPU reference: fp32ToInt8.

struct Dims { n: u32, tensors: u32, pad0: u32, pad1: u32 }
struct Slot { offset: u32, size: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> slots: array<Slot>;
@group(0) @binding(3) var<storage, read_write> scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn absmax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let slot = slots[wid.x];
  var m = 0.0;
  for (var i = lid.x; i < slot.size; i += 256u) { m = max(m, abs(grad[slot.offset + i])); }
  part[lid.x] = m;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (lid.x < stride) { part[lid.x] = max(part[lid.x], part[lid.x + stride]); }
    workgroupBarrier();
  }
  if (lid.x == 0u) { scales[wid.x] = part[0] / 127.0; }
}

fn tensorOf(i: u32) -> u32 {
  for (var t = 0u; t + 1u < dims.tensors; t++) {
    let s = slots[t];
    if (i < s.offset + s.size) { return t; }
  }
  return dims.tensors - 1u;
}

@compute @workgroup_size(256)
fn quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let words = (dims.n + 3u) / 4u;
  for (var w = gid.x; w < words; w += groups.x * 256u) {
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
      let i = 4u * w + b;
      if (i >= dims.n) { break; }
      let scale = scales[tensorOf(i)];
      var q = 0.0;
      if (scale > 0.0) { q = clamp(round(grad[i] / scale), -127.0, 127.0); }
      word = word | ((u32(i32(q)) & 0xffu) << (8u * b));
    }
    out[w] = word;
  }
}
