// embedding: a GPT's input, x[i, c] = dropout(wte[tokens[i], c] + wpe[i % T, c]) over N = B·T rows
// of width C, and the gradients of wte and wpe. random.wgsl is prepended.
//   forward       src = params, dst = x
//   backward_wte  src = dx (the stream's gradient, dropout applied here with the same key),
//                 dst = grads: dwte[v, c] += Σ over rows holding token v. Adds, because the tied
//                 head's gradient is already there. One thread per (v, c) scanning the tokens:
//                 no atomics, so the sum's order, and its bits, are fixed.
//   backward_wpe  dst = grads: dwpe[t, c] = Σ_b dx[b·T + t, c] (written, not added).
// Tokens outside [0, V) contribute nothing (the host validates them before upload).
// Workgroup 256, grid-stride. CPU reference: embeddingForward, embeddingBackward.

struct Dims {
  N: u32, T: u32, C: u32, V: u32,
  offsetWte: u32, offsetWpe: u32, key: u32, threshold: u32,
  scale: f32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> tokens: array<i32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn keep(i: u32) -> f32 {
  return dropoutScale(i, dims.key, dims.threshold, dims.scale);
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let C = dims.C;
  for (var i = gid.x; i < dims.N * C; i += groups.x * 256u) {
    let row = i / C;
    let c = i % C;
    let token = tokens[row];
    var value = 0.0;
    if (token >= 0 && u32(token) < dims.V) {
      value = src[dims.offsetWte + u32(token) * C + c] + src[dims.offsetWpe + (row % dims.T) * C + c];
    }
    dst[i] = value * keep(i);
  }
}

@compute @workgroup_size(256)
fn backward_wte(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let C = dims.C;
  for (var j = gid.x; j < dims.V * C; j += groups.x * 256u) {
    let v = i32(j / C);
    let c = j % C;
    var sum = 0.0;
    for (var row = 0u; row < dims.N; row++) {
      if (tokens[row] == v) {
        let i = row * C + c;
        sum += src[i] * keep(i);
      }
    }
    dst[dims.offsetWte + j] += sum;
  }
}

@compute @workgroup_size(256)
fn backward_wpe(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let C = dims.C;
  let T = dims.T;
  for (var j = gid.x; j < T * C; j += groups.x * 256u) {
    var sum = 0.0;
    for (var row = j / C; row < dims.N; row += T) {
      let i = row * C + j % C;
      sum += src[i] * keep(i);
    }
    dst[dims.offsetWpe + j] = sum;
  }
}
