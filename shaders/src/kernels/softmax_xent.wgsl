// softmax_xent: fused softmax + cross-entropy, forward and backward, over logits [M,C] (row-major)
// and integer labels [M]:
//   p[i,·] = softmax(logits[i,·]);  loss = −(1/M)·Σ_i log p[i, label_i]
//   dlogits[i,j] = (p[i,j] − [j = label_i]) / M
//   stats[0] = loss, stats[1] = count of rows whose arg-max (first on ties) is the label.
// One workgroup of 256 threads takes rows i = tid, tid + 256, …; each thread keeps its partial
// loss and count, then a tree reduction in workgroup memory sums them in a fixed order
// (deterministic). A label outside [0, C) counts as wrong and contributes no gradient.
// Dispatch: (1, 1, 1). CPU reference: softmaxCrossEntropy.

struct Dims { M: u32, C: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

var<workgroup> lossPart: array<f32, 256>;
var<workgroup> correctPart: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.x;
  let M = dims.M;
  let C = dims.C;
  var loss = 0.0;
  var correct = 0.0;
  for (var i = tid; i < M; i += 256u) {
    let row = i * C;
    var maxv = logits[row];
    var arg = 0u;
    for (var j = 1u; j < C; j++) {
      let v = logits[row + j];
      if (v > maxv) { maxv = v; arg = j; }
    }
    var sum = 0.0;
    for (var j = 0u; j < C; j++) { sum += exp(logits[row + j] - maxv); }
    let label = labels[i];
    let valid = label >= 0 && u32(label) < C;
    if (valid) {
      loss += log(sum) - (logits[row + u32(label)] - maxv);
      if (arg == u32(label)) { correct += 1.0; }
    }
    let inv = 1.0 / f32(M);
    for (var j = 0u; j < C; j++) {
      let p = exp(logits[row + j] - maxv) / sum;
      let onehot = select(0.0, 1.0, valid && j == u32(label));
      dlogits[row + j] = select(0.0, (p - onehot) * inv, valid);
    }
  }
  lossPart[tid] = loss;
  correctPart[tid] = correct;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      lossPart[tid] += lossPart[tid + stride];
      correctPart[tid] += correctPart[tid + stride];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    stats[0] = lossPart[0] / f32(M);
    stats[1] = correctPart[0];
  }
}
